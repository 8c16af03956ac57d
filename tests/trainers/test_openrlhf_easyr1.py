"""OpenRLHF 0.11.2 (installed) and EasyR1 (call shapes copied from its source).

OpenRLHF: its own ``SingleTurnAgentExecutor`` loads ``openrlhf.py`` by path (what
``--reward.remote_url`` does) and runs ``execute`` on rows from ``to_openrlhf`` (prompt built
by OpenRLHF's ``preprocess_data`` with the chat template, image through its VLM path with
the tiny processor); the model's generation is the one stand-in (a stub engine that
returns given responses: vLLM needs a GPU). Each response becomes an ``Experience`` the way
``SamplesGenerator._process_response_into_experience`` makes one (copied: that module
imports vLLM), and OpenRLHF's own ``make_experience_batch`` stacks their ``info``, which
raises KeyError when one response lacks a key another has.

EasyR1 ships its own fork of the ``verl`` package, so it cannot be installed next to verl
0.9.1; its ``AutoRewardManager`` (hiyouga/EasyR1 ``verl/workers/reward/function.py``) is
copied here as far as derender is concerned: load the file by path as ``custom_reward_fn``,
read ``REWARD_TYPE``, call the function per batch or per response, put ``overall`` at the
last token and append every key to one list per key.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections import defaultdict
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.timeout(600)
FAILED = "```python\nadd_object(shape='cube',\n```"


@pytest.fixture(scope="module")
def rows(farm_env):
    from derender.protocol.client import Client
    from derender.rl.integrations.dataset import task_dataset
    from derender.scenes import GeneratorConfig, dsl_program, generate_scene

    with Client(farm_env) as client:
        ds = task_dataset(client, seed=9, count=2)
        frame = client.info().frame
    oracles = [
        f"```python\n{dsl_program(generate_scene(9, i, GeneratorConfig(frame=frame)))}```"
        for i in range(2)
    ]
    return ds, oracles


class StubEngine:
    """Stands in for vLLM's AsyncLLMEngine: 'generates' the next given response."""

    def __init__(self, tokenizer, responses):
        self.tokenizer, self.responses = tokenizer, list(responses)

    async def generate(self, prompt_token_ids, params, multi_modal_data=None):
        ids = self.tokenizer(self.responses.pop(0), add_special_tokens=False)["input_ids"]
        out = SimpleNamespace(token_ids=ids, finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[out])


def _experience(response):
    """``SamplesGenerator._process_response_into_experience`` (openrlhf 0.11.2), reduced to
    the fields that carry the reward and the logs."""
    import torch
    from openrlhf.trainer.ppo_utils.experience import Experience

    tokens = torch.tensor(response["observation_tokens"], dtype=torch.long)
    info = {"response_clip_ratio": torch.tensor([False])}
    if response["reward"] is not None:
        info["reward"] = torch.tensor([response["reward"]])
    for key, value in response.get("extra_logs", {}).items():
        if isinstance(value, torch.Tensor):
            value = value.flatten()[0].item()
        info[key] = torch.tensor([value])
    return Experience(
        sequences=tokens.unsqueeze(0),
        attention_mask=torch.ones_like(tokens).unsqueeze(0),
        rewards=torch.tensor([response["reward"]]),
        info=info,
    )


@pytest.mark.parametrize("order", ["valid-first", "failed-first"])
def test_openrlhf_executor_scores_and_batches_mixed_responses(order, rows, tiny_vlm):
    from derender.rl.integrations import openrlhf as adapter
    from derender.rl.integrations.dataset import to_openrlhf
    from openrlhf.datasets.prompts_dataset import preprocess_data
    from openrlhf.trainer.ppo_utils.experience import make_experience_batch
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    ds, oracles = rows
    _, processor = tiny_vlm
    data = to_openrlhf(ds)
    responses = [oracles[0], FAILED] if order == "valid-first" else [FAILED, oracles[1]]
    executor = SingleTurnAgentExecutor(remote_rm_url=[adapter.__file__])
    engine = StubEngine(processor.tokenizer, responses)
    params = SimpleNamespace(max_tokens=512, logprobs=None)

    async def rollout():
        outs = []
        for row in data:
            prompt, label = preprocess_data(
                row, None, "prompt", "ground_truth", processor.apply_chat_template
            )
            outs.append(
                await executor.execute(
                    prompt, label, params, 8192, processor, engine, row["images"]
                )
            )
        return outs

    outs = asyncio.run(rollout())
    assert all(o["reward"] is not None for o in outs), "the reward function raised"
    assert all(o["mm_train_inputs"] is not None for o in outs)  # the image went through
    valid = [r != FAILED for r in responses]
    for out, ok in zip(outs, valid, strict=True):
        assert float(out["reward"][0]) == (pytest.approx(1.0, abs=1e-3) if ok else 0.0)
        assert float(out["extra_logs"]["valid_program"][0]) == float(ok)
    batch = make_experience_batch([_experience(o) for o in outs])
    assert [float(t) for t in batch.info["valid_program"]] == [float(v) for v in valid]
    assert {"scene_graph", "outcome_code", "structural_match", "precise"} <= set(batch.info)


def _easyr1_manager(path):
    """EasyR1's AutoRewardManager.__init__: the reward file loaded by path."""
    spec = importlib.util.spec_from_file_location("custom_reward_fn", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["custom_reward_fn"] = module
    spec.loader.exec_module(module)
    return module.compute_score, getattr(module, "REWARD_TYPE", "batch")


@pytest.mark.parametrize("order", ["valid-first", "failed-first"])
@pytest.mark.parametrize("reward_type", ["batch", "sequential"])
def test_easyr1_reward_manager_logs_one_list_per_key(order, reward_type, rows, farm_env):
    from derender.rl.integrations import easyr1 as adapter
    from derender.rl.integrations.dataset import to_easyr1

    reward_fn, declared = _easyr1_manager(adapter.__file__)
    assert declared == "batch" and sys.modules["custom_reward_fn"].REWARD_NAME == "derender"
    ds, oracles = rows
    data = to_easyr1(ds)
    assert data[0]["prompt"].endswith("<image>") and data[0]["answer"] == ds[0]["ground_truth"]
    responses = [oracles[0], FAILED] if order == "valid-first" else [FAILED, oracles[1]]
    inputs = [
        {"response": r, "response_length": len(r), "ground_truth": row["answer"]}
        for r, row in zip(responses, data, strict=True)
    ]
    # compute_reward_batch / compute_reward_sequential
    scores = reward_fn(inputs) if reward_type == "batch" else [reward_fn(x) for x in inputs]
    metrics = defaultdict(list)
    for score in scores:
        for key, value in score.items():
            metrics[key].append(value)
    assert {len(v) for v in metrics.values()} == {2}
    valid = [r != FAILED for r in responses]
    assert metrics["format"] == [float(v) for v in valid]
    assert [o > 0.99 for o in metrics["overall"]] == valid
