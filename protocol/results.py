"""Typed results with numpy arrays: what a script's run produced, and the replies.

:class:`ScriptRun` is one run of one script before any reward: the worker makes it
(``addon.service.Service.step``), it crosses the farm's backend as its wire form, and the
farm scores it. A scored step is a :class:`StepResult`: the same members plus the reward
(SPEC.md section 4, ``step``), which is what a client returns to its caller, whichever
server answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..scenes import FrameSpec, Scene, scene_from_clevr, scene_to_clevr
from .errors import OUTCOMES
from .targets import Target


def _scene(data: Any) -> Scene | None:
    return None if data is None else scene_from_clevr(data)


def _floats(data: Any) -> dict[str, float]:
    # non-finite numbers travel as null (JSON has no NaN); they come back as NaN.
    return {str(k): float("nan") if v is None else float(v) for k, v in (data or {}).items()}


@dataclass(frozen=True)
class ScriptRun:
    """One script run in the sandbox and rendered: outcome, output, image, read-back.

    Only an ``ok`` run has an image (unless it was render-free) and a read-back scene.
    ``recycle``: the worker that ran it asks to be replaced (a violation, a tampered
    frame, a failed render). ``elements`` and ``recycle`` go from the worker to the broker
    only; a step reply carries the rest. ``cpu_timings`` stay in the process that measured them."""

    outcome: str  # one of protocol.errors.OUTCOMES
    message: str = ""  # human message ("" when ok)
    line: int | None = None  # line in the agent script, when known
    stdout: str = ""  # captured print output (capped)
    image: np.ndarray | None = None  # H×W×3 uint8
    masks: np.ndarray | None = None  # H×W int32 instance ids
    scene: Scene | None = None  # the agent's objects read back as a CLEVR scene
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per stage
    unmapped: int = 0  # the script's objects the read-back could not map to CLEVR objects
    elements: list[Any] | None = None  # an SVG run's drawn shapes (svg.render descriptors)
    recycle: bool = False
    cpu_timings: dict[str, float] = field(default_factory=dict, compare=False)

    @classmethod
    def ended(cls, outcome: str, message: str) -> ScriptRun:
        """A run the farm ended itself (its hard deadline, a poisoned script)."""
        return cls(outcome, message)

    def to_wire(self, frame: FrameSpec | None = None) -> dict[str, Any]:
        """The wire members (arrays inline); ``frame``: the one the scene was read in."""
        return {
            "outcome": self.outcome,
            "message": self.message,
            "line": self.line,
            "stdout": self.stdout,
            "image": self.image,
            "masks": self.masks,
            "scene": None if self.scene is None else scene_to_clevr(self.scene, frame),
            "unmapped": self.unmapped,
            "elements": self.elements,
            "timings": dict(self.timings),
            "recycle": self.recycle,
        }

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ScriptRun:
        """Raises ValueError for an outcome no derender version has."""
        if d["outcome"] not in OUTCOMES:
            raise ValueError(f"unknown outcome {d['outcome']!r:.40}")
        return cls(
            outcome=d["outcome"],
            message=d.get("message") or "",
            line=d.get("line"),
            stdout=d.get("stdout") or "",
            image=d.get("image"),
            masks=d.get("masks"),
            scene=_scene(d.get("scene")),
            timings=_floats(d.get("timings")),
            unmapped=int(d.get("unmapped") or 0),
            elements=d.get("elements"),
            recycle=bool(d.get("recycle")),
        )


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
    canvas: dict[str, Any] | None = None  # the SVG canvas (width, height, background), if served
    # added in 0.4: the preset of each env's steps that name none (before: default_preset)
    default_presets: dict[str, str] = field(default_factory=dict)

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
            canvas=dict(d["canvas"]) if d.get("canvas") else None,
            default_presets=dict(
                d.get("default_presets")
                or {env: d["default_preset"] for env in d.get("envs", ("clevr",))}
            ),
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
