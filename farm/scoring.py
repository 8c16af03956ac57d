"""Score finished steps in one batched reward call and build their step-result bodies.

Shared by the standalone handler (rewards in-process, ``addon.server``) and the farm's
reward stage (rewards in the broker), so a ``step`` reply means the same thing whichever
server produced it (SPEC.md section 4, ``step``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol.results import ScriptRun
from ..protocol.targets import Target
from ..scenes import FrameSpec, dsl_program


@dataclass(eq=False)
class FinishedStep:
    """A script's run for a target, waiting for its reward."""

    script: str
    target: Target
    run: ScriptRun
    send_masks: bool = False  # the client asked for the candidate's masks


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
        [s.run.image for s in steps],
        [s.target.image for s in steps],
        reward_spec,
        outcomes=[s.run.outcome for s in steps],
        render_masks=[s.run.masks for s in steps],
        target_masks=[s.target.masks for s in steps],
        scenes=[s.run.scene for s in steps],
        target_scenes=[s.target.scene if c else None for s, c in zip(steps, clevr, strict=True)],
        codes=[s.script for s in steps],
        # the ground truth a script's length is held against: the DSL program, or the SVG
        # (written out only for a spec that weights the length)
        reference_codes=[
            dsl_program(s.target.scene) if c else s.target.svg
            for s, c in zip(steps, clevr, strict=True)
        ]
        if "code_length" in reward_spec.weights
        else None,
        elements=[s.run.elements for s in steps],
        target_elements=[
            None if c else list(s.target.elements) for s, c in zip(steps, clevr, strict=True)
        ],
    )
    per_step = (time.perf_counter() - t0) / len(steps)
    bodies = []
    for s, sc in zip(steps, scored, strict=True):
        body = s.run.to_wire(frame)
        del body["recycle"], body["elements"]  # between the worker and the broker only
        body.update(
            masks=s.run.masks if s.send_masks else None,
            timings={**s.run.timings, "reward": per_step},
            reward=sc.reward,
            components=dict(sc.components),
            unavailable=list(sc.unavailable),
            preset=preset,
            spec_hash=sc.spec_hash,
            target_id=s.target.target_id,
            frame_hash=s.target.frame_hash,
        )
        bodies.append(body)
    return bodies
