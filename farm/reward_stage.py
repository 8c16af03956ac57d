"""The farm's batched reward stage: workers return pixels, the broker scores them together.

Workers never compute rewards (a Blender process has no business loading torch). Every
step result that arrives from a worker is queued here; once per broker loop iteration
``flush`` scores everything queued with one :func:`derender.reward.score_batch` call per
reward preset (one batched LPIPS forward, on the GPU when torch sees one), then hands each
finished step-result body (SPEC.md section 4, ``step``) to its callback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..protocol.errors import InternalError, ProtocolError
from ..protocol.targets import Target
from ..scenes import FrameSpec, scene_from_clevr
from .scoring import FinishedStep, score_steps

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Finished:
    """One step a worker has finished (or the farm gave up on), waiting for its reward."""

    script: str
    target: Target
    preset: str
    masks: bool  # the client asked for the candidate's masks
    result: dict[str, Any]  # the worker's result members (outcome, image, masks, scene ...)
    done: Callable[[dict[str, Any] | ProtocolError], None]  # the step body, or why not
    queued: float = field(default_factory=time.perf_counter)


def failed_result(outcome: str, message: str) -> dict[str, Any]:
    """A worker-result body for a step the farm ended itself (hard deadline, poison)."""
    return {
        "outcome": outcome,
        "message": message,
        "line": None,
        "stdout": "",
        "image": None,
        "masks": None,
        "scene": None,
        "timings": {},
    }


class RewardStage:
    """Queues finished steps and scores them in batches."""

    def __init__(self, frame: FrameSpec, default_preset: str) -> None:
        from .. import reward

        self._reward = reward
        self.frame = frame
        self.default_preset = default_preset
        self._specs: dict[str, Any] = {}
        self._queue: list[Finished] = []
        self.batches = 0
        self.scored = 0

    def __len__(self) -> int:
        return len(self._queue)

    def presets(self) -> tuple[str, ...]:
        return tuple(self._reward.PRESETS)

    def warm(self, size: int) -> None:
        """Score one dummy pair with the default preset now: loads torch/LPIPS before the
        first client (other presets load on their first use)."""
        import numpy as np

        blank = np.zeros((size, size, 3), np.uint8)
        self._reward.score_batch([blank], [blank], spec=self._spec(self.default_preset))

    def add(self, item: Finished) -> None:
        self._queue.append(item)

    def flush(self) -> int:
        """Score everything queued (one batch per preset) and call back; returns the count."""
        queued, self._queue = self._queue, []
        groups: dict[str, list[Finished]] = {}
        for item in queued:
            groups.setdefault(item.preset, []).append(item)
        for name, items in groups.items():
            self._score(name, items)
        return len(queued)

    def _spec(self, name: str) -> Any:
        if name not in self._specs:
            self._specs[name] = self._reward.preset(name)
        return self._specs[name]

    def _score(self, name: str, items: list[Finished]) -> None:
        try:
            self._score_batch(name, items)
        except Exception as exc:  # a bug in scoring must fail these steps, not the farm
            log.exception("scoring %d steps with preset %r failed", len(items), name)
            for it in items:
                it.done(InternalError(f"reward failed: {type(exc).__name__}: {exc}"))

    def _score_batch(self, name: str, items: list[Finished]) -> None:
        t0 = time.perf_counter()
        steps = [
            FinishedStep(
                it.script,
                it.target,
                it.result["outcome"],
                it.result.get("message") or "",
                it.result.get("line"),
                it.result.get("stdout") or "",
                it.result.get("image"),
                it.result.get("masks"),
                None if it.result.get("scene") is None else scene_from_clevr(it.result["scene"]),
                {**(it.result.get("timings") or {}), "reward_wait": t0 - it.queued},
                send_masks=it.masks,
                unmapped=int(it.result.get("unmapped") or 0),
                elements=it.result.get("elements"),
            )
            for it in items
        ]
        bodies = score_steps(steps, self._spec(name), name, self.frame)
        self.batches += 1
        self.scored += len(items)
        for it, body in zip(items, bodies, strict=True):
            it.done(body)
