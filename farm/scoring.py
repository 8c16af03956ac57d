"""Score finished steps in one batched reward call and build their step-result bodies.

Shared by the standalone handler (rewards in-process, ``addon.server``) and the farm's
reward stage (rewards in the broker), so a ``step`` reply means the same thing whichever
server produced it (SPEC.md section 4, ``step``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..protocol.targets import Target
from ..scenes import FrameSpec, Scene, dsl_program, scene_to_clevr


@dataclass(eq=False)
class FinishedStep:
    """What one sandboxed run produced for a target, waiting for its reward."""

    script: str
    target: Target
    outcome: str
    message: str = ""
    line: int | None = None
    stdout: str = ""
    image: Any = None  # H×W×3 uint8, or None when the script did not render
    masks: Any = None  # H×W int32 instance ids, or None
    readback: Scene | None = None
    timings: dict[str, float] = field(default_factory=dict)
    send_masks: bool = False  # the client asked for the candidate's masks
    unmapped: int = 0  # the agent's objects the read-back could not map to CLEVR objects
    elements: list[Any] | None = None  # an SVG step's drawn shapes (svg.render descriptors)


def score_steps(
    steps: Sequence[FinishedStep], reward_spec: Any, preset: str, frame: FrameSpec
) -> list[dict[str, Any]]:
    """One ``score_batch`` over all steps; each step's reply body, in order.

    ``timings["reward"]`` is the batch's time shared out: what this step cost scoring.
    """
    from ..reward import score_batch

    if not steps:
        return []
    t0 = time.perf_counter()
    clevr = [s.target.env == "clevr" for s in steps]
    scored = score_batch(
        [s.image for s in steps],
        [s.target.image for s in steps],
        reward_spec,
        outcomes=[s.outcome for s in steps],
        render_masks=[s.masks for s in steps],
        target_masks=[s.target.masks for s in steps],
        scenes=[s.readback for s in steps],
        target_scenes=[s.target.scene if c else None for s, c in zip(steps, clevr, strict=True)],
        codes=[s.script for s in steps],
        # the ground truth a script's length is held against: the DSL program, or the SVG
        reference_codes=[
            dsl_program(s.target.scene) if c else s.target.svg
            for s, c in zip(steps, clevr, strict=True)
        ],
        elements=[s.elements for s in steps],
        target_elements=[
            None if c else list(s.target.elements) for s, c in zip(steps, clevr, strict=True)
        ],
    )
    per_step = (time.perf_counter() - t0) / len(steps)
    return [
        {
            "outcome": s.outcome,
            "message": s.message or "",
            "line": s.line,
            "stdout": s.stdout or "",
            "reward": sc.reward,
            "components": dict(sc.components),
            "unavailable": list(sc.unavailable),
            "preset": preset,
            "spec_hash": sc.spec_hash,
            "image": s.image,
            "masks": s.masks if s.send_masks else None,
            "scene": None if s.readback is None else scene_to_clevr(s.readback, frame),
            "unmapped": s.unmapped,
            "timings": {**s.timings, "reward": per_step},
            "target_id": s.target.target_id,
            "frame_hash": s.target.frame_hash,
        }
        for s, sc in zip(steps, scored, strict=True)
    ]
