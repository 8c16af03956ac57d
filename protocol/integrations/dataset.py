"""Training rows for any trainer: a prompt (chat messages), the target image, the ground truth.

Each row names its target in ``ground_truth`` the way :func:`.core.parse_ground_truth`
reads it: a seed spec when the scenes come from the server's own generator stream, or the
whole CLEVR scene when a curriculum config made them (so the reward never depends on the
server's generator settings or on its target cache).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from ...scenes import GeneratorConfig, generate_scene
from ..client import Client
from ..messages import SceneTarget, SeedTarget
from ..prompt import Style, build_messages
from .core import ground_truth_json

DATA_SOURCE = "derender/clevr"


def task_rows(
    client: Client,
    seed: int,
    count: int,
    start: int = 0,
    config: GeneratorConfig | None = None,
    style: Style = "openai",
) -> Iterator[dict[str, Any]]:
    """Rows for scenes ``start .. start + count - 1`` of the stream ``seed``.

    Keys: ``data_source``, ``prompt`` (chat messages in ``style``), ``image`` (the target,
    uint8 H×W×3), ``ground_truth`` (JSON string), ``target_id``.
    """
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
        yield {
            "data_source": DATA_SOURCE,
            "prompt": build_messages(info, target.image, style=style),
            "image": target.image,
            "ground_truth": ground_truth_json(spec),
            "target_id": target.target_id,
        }
