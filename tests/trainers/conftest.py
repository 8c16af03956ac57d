"""The trainer suite: real trainer packages in their own environment, against a real farm.

It runs in ``.venv-trainers`` (``make test`` builds it; the pinned versions are in
``tests/trainers/requirements.txt``), where derender is installed client-side, without
bpy. The farm runs as users run it: ``derender farm`` from the main ``.venv`` (Blender
workers need bpy, which exists for CPython 3.11 only), a separate process found at
``<repo>/.venv/bin/derender``; the adapters reach it through ``DERENDER_ADDRESS``.

Models are tiny and randomly initialised, built here from configs (nothing is downloaded):
a LLaVA-style vision-language model (CLIP vision tower, Llama text model), an image
processor with its PIL defaults shrunk to 28 px, and a byte-level BPE tokenizer trained in
memory with the ``tokenizers`` library, with a chat template.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
FARM_CLI = ROOT / ".venv" / "bin" / "derender"
# Renders the chat messages of derender's prompts: string contents, or lists of parts where
# {"type": "image"} becomes the processor's image token.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<|im_start|>", "<|im_end|>", "<image>"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def farm():
    """``derender farm`` (2 Workbench workers, 64 px, and 1 SVG worker) from the main
    environment: one farm serves both kinds."""
    from derender.farm.status import query_status
    from derender.protocol.errors import ClientTimeout

    if not FARM_CLI.exists():
        raise RuntimeError(f"{FARM_CLI} is missing: `make venv` builds the main environment")
    address = f"tcp://127.0.0.1:{_free_port()}"
    cmd = [str(FARM_CLI), "farm", "--workers", "2", "--engine", "workbench", "--size", "64"]
    cmd += ["--svg-workers", "1"]
    proc = subprocess.Popen(
        [*cmd, "--bind", address], start_new_session=True, stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"derender farm exited with status {proc.returncode}")
            try:
                workers = query_status(address, timeout=2.0)["workers"]
                if sum(w["state"] != "starting" for w in workers) >= 3:
                    break
            except ClientTimeout:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("derender farm was not ready within 300 s")
            time.sleep(0.2)
        yield SimpleNamespace(address=address, proc=proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="session")
def farm_env(farm):
    """DERENDER_ADDRESS set for this process (and every subprocess and Ray worker it makes)."""
    from derender.rl.integrations import core

    old = os.environ.get(core.ADDRESS_VAR)
    os.environ[core.ADDRESS_VAR] = farm.address
    core._default = None
    try:
        yield farm.address
    finally:
        if core._default is not None:
            core._default.close()
            core._default = None
        if old is None:
            os.environ.pop(core.ADDRESS_VAR, None)
        else:
            os.environ[core.ADDRESS_VAR] = old


def _tokenizer():
    from derender.scenes.cheatsheet import EXAMPLE_DSL, cheatsheet
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator([cheatsheet(), EXAMPLE_DSL] * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", eos_token="<|im_end|>", chat_template=CHAT_TEMPLATE
    )


@pytest.fixture(scope="session")
def tiny_vlm():
    """(model, processor) of a randomly initialised LLaVA-style model, ~60k parameters."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = _tokenizer()
    images = CLIPImageProcessorPil(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
    )
    processor = LlavaProcessor(
        image_processor=images,
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            image_size=28, patch_size=14, projection_dim=32,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=8192,
            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
        ),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlavaForConditionalGeneration(config), processor


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """The in-memory tokenizer saved where verl's reward workers load it from by path."""
    path = tmp_path_factory.mktemp("tokenizer")
    _tokenizer().save_pretrained(path)
    return path
