"""One request -> one result: the only implementation of "run one step".

The add-on server and the farm worker are transports around :class:`Service`. A step is:
snapshot → sandboxed script (compile, run) → integrity check → cached modifier results
for the agent's objects (:mod:`.evaluated`) → before a render, the cached assets it can
use → render (+ masks, only when asked; neither for a render-free
step) → readback → reset, and whatever happens the worker ends the step at exactly the
frame. Each stage is timed in wall and CPU seconds.

A literal DSL program runs no agent code (:mod:`.sandbox.literal`): the frame is still
:attr:`~.frame.BuiltFrame.intact` after it, so the integrity check is skipped, and its
render compares only the cached assets not yet compared since agent code last ran.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from ..protocol.results import ScriptRun
from ..scenes.frame import FrameSpec
from ..scenes.model import Scene
from . import assets, build, evaluated, render
from .frame import BuiltFrame, FrameBroken
from .readback import read_back
from .sandbox import errors, integrity
from .sandbox.limits import ScriptLimits
from .sandbox.runner import run_script


@dataclass
class SceneRender:
    """A trusted scene rendered in the frame (a target)."""

    image: np.ndarray  # H×W×3 uint8
    masks: np.ndarray | None  # H×W int32
    timings: dict[str, float]  # seconds: build, render, masks, reset


class _Clock:
    """Wall and CPU (process) time per stage: on a loaded machine only the CPU time says
    what a stage costs."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t = time.perf_counter()
        self._c = time.process_time()

    def lap(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.timings[name] = now - self._t
        self.cpu[name] = cpu - self._c
        self._t, self._c = now, cpu

    @contextmanager
    def apart(self, part: str) -> Iterator[None]:
        """Time the block as a stage of its own, ``part``, left out of the running lap."""
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        self.timings[part], self.cpu[part] = wall, cpu
        self._t += wall
        self._c += cpu

    def split(self, name: str, part: str, spent: tuple[float, float]) -> None:
        """Move ``spent`` (wall, CPU) of the last lap ``name`` to a lap of its own, ``part``."""
        wall, cpu = spent
        self.timings[part], self.cpu[part] = wall, cpu
        self.timings[name] -= wall
        self.cpu[name] -= cpu


class Service:
    """A worker's Blender: the locked frame plus the operations on it.

    ``frame`` is the spec it serves; ``built_frame`` is that frame built in this
    process's Blender, which the service owns. Making a service takes the built frame
    over from any earlier one in the process: that one raises
    :class:`.frame.FrameTakenOver` from then on."""

    def __init__(self, frame: FrameSpec, limits: ScriptLimits | None = None) -> None:
        self.frame = frame
        self.limits = limits or ScriptLimits()
        self.built_frame = BuiltFrame(frame)
        # Everything alive now (Blender's Python side, the modules, the frame) lives as
        # long as the worker: out of the cyclic collector's reach, its full collections
        # stop walking it (~30 ms each, every few steps, in whichever stage they hit).
        gc.freeze()

    def render_scene(self, scene: Scene, masks: bool = True) -> SceneRender:
        """Trusted build of ``scene`` in the frame, rendered; the frame is reset after."""
        self.built_frame.ensure_held()
        clock = _Clock()
        try:
            objects = build.build(scene)
            _rebuilt_before_render()
            clock.lap("build")
            image = render.render_image(self.frame)
            clock.lap("render")
            mask = render.render_masks(objects, self.frame) if masks else None
            clock.lap("masks")
        finally:
            self.built_frame.reset(self.frame)
            clock.lap("reset")
        return SceneRender(image, mask, clock.timings)

    def step(
        self, script: str, seed: int = 0, masks: bool = True, render: bool = True
    ) -> ScriptRun:
        """Run ``script`` in the sandbox and render it (``render=False``: a render-free
        step, for scene-graph rewards: no image and no masks, the read-back scene only).
        Never raises for anything the script does; a non-ok outcome has no image. A frame
        that even a rebuild cannot restore makes the step ``frame_tampered`` and asks for
        the worker's replacement. Raises :class:`.frame.FrameTakenOver` (before running
        anything) if a newer service in this process took the frame over."""
        self.built_frame.ensure_held()
        clock = _Clock()
        before = integrity.snapshot()
        verified = False  # the frame known intact after the script
        try:
            result, verified = self._step(script, seed, masks and render, render, clock, before)
        finally:
            try:
                if not self.built_frame.intact:  # else nothing but derender's code ran
                    integrity.restore(before)
                self.built_frame.reset(self.frame, verified=verified)
                broken = None
            except FrameBroken as exc:
                broken = exc
            clock.lap("reset")
        if broken is not None:
            return replace(
                result,
                outcome=errors.FRAME_TAMPERED,
                message=f"the frame could not be restored: {broken}",
                image=None,
                masks=None,
                scene=None,
                recycle=True,
                cpu_timings=clock.cpu,
            )
        return replace(result, cpu_timings=clock.cpu)

    def _step(
        self,
        script: str,
        seed: int,
        masks: bool,
        render_image: bool,
        clock: _Clock,
        before: integrity.Snapshot,
    ) -> tuple[ScriptRun, bool]:
        """The step's result, and whether the frame is known intact after the script (the
        check found it so, or no agent code ran) with only trusted code run since (the
        render, the read-back)."""
        run, session = run_script(script, self.built_frame, self.limits, seed)
        clock.lap("script")
        clock.split("script", "compile", run.compile_s)

        # clock.timings, not a copy: the reset after the step adds its own lap
        def fail(outcome: str, message: str, line: int | None = None) -> ScriptRun:
            recycle = outcome in errors.RECYCLE_OUTCOMES
            return ScriptRun(outcome, message, line, run.stdout, timings=clock.timings,
                             recycle=recycle)  # fmt: skip

        tampered: list[str] = []
        # Intact: no agent code ran (a literal DSL program, a script that did not compile)
        # since the frame was last built or reset; only derender's code touched bpy.data.
        if not self.built_frame.intact:
            tampered = integrity.tampering(self.built_frame, self.frame, before, session.data)
        recycle = False
        objects = session.data.live_objects()
        ok = not tampered and run.outcome == errors.OK
        with clock.apart("modifiers"):  # stacks evaluated before get their cached result
            missed = evaluated.substitute([o for o, _ in objects] if ok else [])
        try:
            if ok and render_image:
                # An asset edited through a hole in an earlier step cannot be told from one
                # this script edited: either way the render gets it as built, and the
                # worker is replaced.
                recycle = bool(_rebuilt_before_render())
        except (RuntimeError, ReferenceError) as exc:
            tampered = [f"an edited shared asset could not be rebuilt: {exc}"]
        clock.lap("verify")
        if tampered:
            return fail(errors.FRAME_TAMPERED, "; ".join(tampered)), False
        if run.outcome != errors.OK:
            return fail(run.outcome, run.message, run.line), True
        image = mask = None
        try:
            if render_image:
                image = render.render_image(self.frame)
                clock.lap("render")
            if masks:
                mask = render.render_masks([o for o, _ in objects], self.frame)
                clock.lap("masks")
        except (RuntimeError, ValueError, OSError) as exc:
            # a render that failed half-way may have left its own settings: check again
            return fail(errors.RENDER_ERROR, f"{type(exc).__name__}: {exc}"), False
        back = read_back(objects)
        evaluated.remember(missed)
        clock.lap("readback")
        return ScriptRun(
            errors.OK, "", None, run.stdout, image, mask, back.scene, clock.timings,
            unmapped=back.skipped, recycle=recycle,
        ), True  # fmt: skip


def _rebuilt_before_render() -> list[str]:
    """Rebuild the edited cached assets the render can use (:func:`.assets.verify_in_use`)
    and say so on stderr: an asset is only edited through a hole in the sandbox."""
    rebuilt = assets.verify_in_use()
    if rebuilt:
        print(
            f"derender: shared assets {rebuilt} had been edited; rebuilt before the render",
            file=sys.stderr,
        )
    return rebuilt
