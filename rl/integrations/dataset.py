"""Training rows for each trainer: a prompt, the target image, the ground truth naming it.

Each row names its target in ``ground_truth`` the way :func:`.core.parse_ground_truth`
reads it: a seed spec when the scenes come from the server's own generator stream, or the
whole CLEVR scene when a curriculum config made them (so the reward never depends on the
server's generator settings or on its target cache).

* :func:`task_rows` — plain dicts, prompts with inline images (OpenAI data URLs, or PIL
  images for a Hugging Face processor): for chat APIs and hand-written loops.
* :func:`task_dataset` — a ``datasets.Dataset`` that TRL's ``GRPOTrainer`` takes as it is:
  ``prompt`` (chat messages with ``{"type": "image"}`` placeholders), ``image`` (feature
  ``datasets.Image()``), ``ground_truth``, ``target_id``, ``data_source``. With
  ``text_only=True`` the prompt describes the frame and the target in words and there is
  no image column, for text models.
* :func:`to_verl`, :func:`to_easyr1`, :func:`to_openrlhf` — that dataset in each trainer's
  row layout (the layouts are described on each function); write it with
  ``dataset.to_parquet(path)`` (verl, EasyR1) or ``dataset.to_json(path)`` (OpenRLHF).

``env="svg"`` makes SVG rows: each target a composition of :func:`derender.svg.generate`
(``svg_config`` its curriculum knobs), named in ``ground_truth`` by its whole document
(``{"target": {"svg": …}}``), the prompt the SVG one (canvas, SVG cheat sheet, a fenced
``svg`` answer), ``data_source`` ``derender/svg``. Every trainer layout below is the same.

``datasets`` is imported only by the functions that return a Dataset, so a client without
it can still build :func:`task_rows`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ...protocol.client import Client
from ...protocol.messages import SceneTarget, SeedTarget, SvgTarget
from ...scenes import GeneratorConfig, Scene, generate_scene
from ...svg.generator import SvgGeneratorConfig, generate
from ..prompt import Env, Style, build_messages, info_canvas, png_bytes, text_messages
from .core import ground_truth_json

DATA_SOURCE = "derender/clevr"
DATA_SOURCES: dict[str, str] = {"clevr": DATA_SOURCE, "svg": "derender/svg"}
ABILITY = "inverse_graphics"
IMAGE_TAG = "<image>"  # where verl, EasyR1 and OpenRLHF put an image in a string prompt


def _svg_targets(
    client: Client, seed: int, count: int, start: int, config: SvgGeneratorConfig | None
) -> Iterator[tuple[SvgTarget, Scene, Any]]:
    """(ground-truth spec, empty scene, rendered Target) for compositions start .. + count."""
    config = replace(config or SvgGeneratorConfig(), canvas=info_canvas(client.info()))
    for index in range(start, start + count):
        spec = SvgTarget(generate(seed, index, config).to_svg())
        yield spec, Scene(()), client.reset(svg=spec.svg, masks=False)


def _targets(
    client: Client,
    seed: int,
    count: int,
    start: int,
    config: GeneratorConfig | SvgGeneratorConfig | None,
    env: Env = "clevr",
) -> Iterator[tuple[SeedTarget | SceneTarget | SvgTarget, Scene, Any]]:
    """(ground-truth spec, scene, rendered Target) for scenes start .. start + count - 1."""
    if env == "svg":
        if config is not None and not isinstance(config, SvgGeneratorConfig):
            raise TypeError(f"env 'svg' takes an SvgGeneratorConfig, got {type(config)}")
        yield from _svg_targets(client, seed, count, start, config)
        return
    if isinstance(config, SvgGeneratorConfig):
        raise TypeError("an SvgGeneratorConfig needs env='svg'")
    info = client.info()
    if config is not None:
        config = replace(config, frame=info.frame)
    for index in range(start, start + count):
        if config is None:
            spec: SeedTarget | SceneTarget = SeedTarget(seed, index)
            target = client.reset(seed=seed, index=index, masks=False)
        else:
            spec = SceneTarget(generate_scene(seed, index, config).stripped())
            target = client.reset(scene=spec.scene, masks=False)
        yield spec, target.scene, target


def task_rows(
    client: Client,
    seed: int,
    count: int,
    start: int = 0,
    config: GeneratorConfig | SvgGeneratorConfig | None = None,
    style: Style = "openai",
    env: Env = "clevr",
) -> Iterator[dict[str, Any]]:
    """Rows for scenes ``start .. start + count - 1`` of the stream ``seed``.

    Keys: ``data_source``, ``prompt`` (chat messages in ``style``), ``image`` (the target,
    uint8 H×W×3), ``ground_truth`` (JSON string), ``target_id``.
    """
    info = client.info()
    for spec, _, target in _targets(client, seed, count, start, config, env):
        yield {
            "data_source": DATA_SOURCES[env],
            "prompt": build_messages(info, target.image, style=style, env=env),
            "image": target.image,
            "ground_truth": ground_truth_json(spec),
            "target_id": target.target_id,
        }


def task_dataset(
    client: Client,
    seed: int,
    count: int,
    start: int = 0,
    config: GeneratorConfig | SvgGeneratorConfig | None = None,
    text_only: bool = False,
    env: Env = "clevr",
) -> Any:
    """A ``datasets.Dataset`` of scenes ``start .. start + count - 1`` (module docstring)."""
    if text_only and env == "svg":
        raise ValueError("text_only prompts describe CLEVR scenes in words; env 'svg' has none")
    import datasets

    info = client.info()
    rows = []
    for spec, scene, target in _targets(client, seed, count, start, config, env):
        row: dict[str, Any] = {
            "data_source": DATA_SOURCES[env],
            "ground_truth": ground_truth_json(spec),
            "target_id": target.target_id,
        }
        if text_only:
            row["prompt"] = text_messages(info, scene)
        else:
            row["prompt"] = build_messages(info, target.image, style="placeholder", env=env)
            row["image"] = {"bytes": png_bytes(target.image), "path": None}
        rows.append(row)
    features = {
        "data_source": datasets.Value("string"),
        "ground_truth": datasets.Value("string"),
        "target_id": datasets.Value("string"),
    }
    if text_only:
        message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    else:
        part = {"type": datasets.Value("string"), "text": datasets.Value("string")}
        message = {"role": datasets.Value("string"), "content": datasets.List(part)}
        features["image"] = datasets.Image()
    features["prompt"] = datasets.List(message)
    return datasets.Dataset.from_list(rows, features=datasets.Features(features))


def _flat_content(content: str | Sequence[Mapping[str, Any]]) -> str:
    """A message's parts as one string, each image placeholder as ``<image>``."""
    if isinstance(content, str):
        return content
    return "\n".join(IMAGE_TAG if p["type"] == "image" else p["text"] for p in content)


def _flat_messages(prompt: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": _flat_content(m["content"])} for m in prompt]


def _png(image: Any) -> bytes:
    """PNG bytes of a dataset image (a PIL image once ``datasets`` has decoded it)."""
    if isinstance(image, np.ndarray):
        return png_bytes(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def to_verl(dataset: Any, split: str = "train") -> Any:
    """verl's RLHFDataset row layout (``data.prompt_key=prompt``, ``data.image_key=images``):

    ``data_source``, ``prompt`` (chat messages with string contents; the image as
    ``<image>``), ``images`` (``[{"bytes": png}]``; absent for text-only rows),
    ``ability``, ``reward_model`` = ``{"style": "rule", "ground_truth": ...}`` (what verl
    hands to ``compute_score``), ``extra_info`` = ``{"split", "index", "target_id"}``.
    """

    def row(example: dict[str, Any], index: int) -> dict[str, Any]:
        out = {
            "data_source": example["data_source"],
            "prompt": _flat_messages(example["prompt"]),
            "ability": ABILITY,
            "reward_model": {"style": "rule", "ground_truth": example["ground_truth"]},
            "extra_info": {"split": split, "index": index, "target_id": example["target_id"]},
        }
        if "image" in example:
            out["images"] = [{"bytes": _png(example["image"])}]
        return out

    return dataset.map(row, with_indices=True, remove_columns=dataset.column_names)


def to_easyr1(dataset: Any) -> Any:
    """EasyR1's RLHFDataset row layout (its defaults ``data.prompt_key=prompt``,
    ``data.answer_key=answer``, ``data.image_key=images``): ``prompt`` is ONE string (EasyR1
    builds a single user message from it, so the system text leads it) with ``<image>``
    where the image goes; ``answer`` is the ground truth EasyR1 passes to the reward
    function; ``images`` is ``[{"bytes": png}]`` (absent for text-only rows)."""

    def row(example: dict[str, Any]) -> dict[str, Any]:
        text = "\n\n".join(m["content"] for m in _flat_messages(example["prompt"]))
        out: dict[str, Any] = {"prompt": text, "answer": example["ground_truth"]}
        if "image" in example:
            out["images"] = [{"bytes": _png(example["image"])}]
        return out

    return dataset.map(row, remove_columns=dataset.column_names)


def to_openrlhf(dataset: Any) -> Any:
    """OpenRLHF's prompt-dataset row layout (``--data.input_key prompt --data.label_key
    ground_truth --data.image_key images --data.apply_chat_template``): ``prompt`` as chat
    messages with string contents (OpenRLHF turns ``<image>`` into an image part),
    ``ground_truth`` (the label handed to ``reward_func``), ``images`` as PNG data URLs
    (what OpenRLHF's image loader reads from JSON lines; absent for text-only rows)."""

    def row(example: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt": _flat_messages(example["prompt"]),
            "ground_truth": example["ground_truth"],
        }
        if "image" in example:
            url = "data:image/png;base64," + base64.b64encode(_png(example["image"])).decode()
            out["images"] = [url]
        return out

    return dataset.map(row, remove_columns=dataset.column_names)
