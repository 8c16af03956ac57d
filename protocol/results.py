"""Typed reply objects (SPEC.md section 4) with numpy arrays, built from decoded replies.

The server side writes the same members (see :mod:`.handler`); these classes are what a
client returns to its caller, so the farm and ``derender serve`` give the same objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..scenes import FrameSpec, Scene, scene_from_clevr
from .targets import Target


def _scene(data: Any) -> Scene | None:
    return None if data is None else scene_from_clevr(data)


def _floats(data: Any) -> dict[str, float]:
    # non-finite numbers travel as null (JSON has no NaN); they come back as NaN.
    return {str(k): float("nan") if v is None else float(v) for k, v in (data or {}).items()}


@dataclass(frozen=True)
class ServerInfo:
    server: dict[str, Any]
    protocol: dict[str, Any]
    frame: FrameSpec
    frame_hash: str
    engine: str
    universe: dict[str, Any]
    reward_presets: tuple[str, ...]
    default_preset: str
    datasets: dict[str, int]
    cheatsheet: str
    # added in 0.3: the environment kinds served and each one's cheat sheet
    envs: tuple[str, ...] = ("clevr",)
    cheatsheets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ServerInfo:
        return cls(
            server=dict(d["server"]),
            protocol=dict(d["protocol"]),
            frame=FrameSpec.from_dict(d["frame"]),
            frame_hash=d["frame_hash"],
            engine=d["engine"],
            universe=dict(d["universe"]),
            reward_presets=tuple(d["reward_presets"]),
            default_preset=d["default_preset"],
            datasets=dict(d.get("datasets", {})),
            cheatsheet=d["cheatsheet"],
            envs=tuple(d.get("envs", ("clevr",))),
            cheatsheets=dict(d.get("cheatsheets") or {"clevr": d["cheatsheet"]}),
        )


def target_from_wire(d: Mapping[str, Any]) -> Target:
    return Target(
        target_id=d["target_id"],
        scene=_scene(d.get("scene")) or Scene(()),
        image=d["image"],
        masks=d.get("masks"),
        frame_hash=d["frame_hash"],
        env=d.get("env", "clevr"),
        svg=d.get("svg"),
    )


@dataclass(frozen=True)
class StepResult:
    """One scored script: outcome, reward and components, render, read-back scene."""

    outcome: str
    message: str
    line: int | None
    stdout: str
    reward: float
    components: dict[str, float]
    unavailable: tuple[str, ...]
    preset: str
    spec_hash: str
    image: np.ndarray | None
    masks: np.ndarray | None
    scene: Scene | None
    timings: dict[str, float] = field(default_factory=dict)
    target_id: str = ""
    frame_hash: str = ""
    unmapped: int = 0  # the script's objects the read-back could not map to CLEVR objects

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> StepResult:
        return cls(
            outcome=d["outcome"],
            message=d.get("message", ""),
            line=d.get("line"),
            stdout=d.get("stdout", ""),
            reward=float(d["reward"]) if d.get("reward") is not None else float("nan"),
            components=_floats(d.get("components")),
            unavailable=tuple(d.get("unavailable", ())),
            preset=d.get("preset", ""),
            spec_hash=d.get("spec_hash", ""),
            image=d.get("image"),
            masks=d.get("masks"),
            scene=_scene(d.get("scene")),
            timings=_floats(d.get("timings")),
            target_id=d.get("target_id", ""),
            frame_hash=d.get("frame_hash", ""),
            unmapped=int(d.get("unmapped") or 0),
        )


@dataclass(frozen=True)
class RenderResult:
    image: np.ndarray
    masks: np.ndarray | None
    timings: dict[str, float]
    frame_hash: str

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> RenderResult:
        return cls(d["image"], d.get("masks"), _floats(d.get("timings")), d["frame_hash"])
