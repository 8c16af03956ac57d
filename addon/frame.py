"""The locked CLEVR frame built in this process's Blender: :class:`BuiltFrame`, its owner.

A :class:`FrameSpec` says what the frame is; a :class:`BuiltFrame` is that frame made in
``bpy.data``, with the snapshots of every datablock it made. It builds (through
:mod:`.frame_build`), checks (through :mod:`.frame_check`: what an agent may have
tampered with) and resets: :meth:`BuiltFrame.reset` returns to exactly the frame between
requests: every datablock that did not exist when the frame was built (and is not a
cached asset) is removed, and the frame is rebuilt if it differs from the spec.

It also knows when no check is needed: :attr:`BuiltFrame.intact` holds from a build or a
reset until code other than derender's may have run (an agent script, a person's edits in
the GUI: :meth:`BuiltFrame.distrust`).

One Blender process has one ``bpy.data``, so it has one built frame: making a
:class:`BuiltFrame` takes the frame over from the one that held it (its build is
removed), and that one raises :class:`FrameTakenOver` from then on.
"""

from __future__ import annotations

from dataclasses import replace

import bpy

from ..scenes.frame import FrameSpec
from . import assets, frame_build, frame_check
from .frame_check import Built


class FrameTakenOver(RuntimeError):
    """A newer :class:`BuiltFrame` in this process took the frame over: this one no
    longer owns anything in ``bpy.data``."""


class FrameBroken(RuntimeError):
    """The frame differs from its snapshot even after a rebuild; names what differs.

    A worker process that raises it is replaced: its Blender state is not trusted."""


# The BuiltFrame that owns bpy.data's frame now. Module state on purpose: bpy.data is
# one per process, so which object may change it is a fact about the process.
_holder: BuiltFrame | None = None


class BuiltFrame:
    """The frame of a spec, built into the current scene; the only code that changes it."""

    def __init__(self, spec: FrameSpec) -> None:
        """Take the frame over from the BuiltFrame that held it (which raises
        :class:`FrameTakenOver` from now on) and build ``spec`` in place of its build."""
        global _holder
        previous, _holder = _holder, self
        self._built: Built | None = None
        self._intact = False
        if previous is not None:
            self._built, previous._built = previous._built, None
        self.build(spec)

    def _own(self) -> Built | None:
        """The current build (None before the first one has finished)."""
        if _holder is not self:
            raise FrameTakenOver("a newer BuiltFrame in this process took the frame over")
        return self._built

    def ensure_held(self) -> None:
        """Raise :class:`FrameTakenOver` unless this is the frame's owner: for a caller
        about to change ``bpy.data`` before its first call here (a trusted build)."""
        self._own()

    def _live(self) -> Built | None:
        """The current build if its scene still exists (a factory reset frees it)."""
        built = self._own()
        return built if built is not None and assets.alive(built.scene) else None

    def build(self, spec: FrameSpec) -> None:
        """Build the whole frame of ``spec`` afresh (see :func:`.frame_build.build`): the
        current build and everything foreign to it go first."""
        previous, self._built = self._own(), None  # a failed build leaves no frame
        self._intact = False
        self._built = frame_build.build(spec, previous)
        self._intact = True

    @property
    def intact(self) -> bool:
        """True if the frame is known to be exactly its snapshot without comparing: it
        was built or reset, and no code but derender's has run since (a literal DSL
        program runs none). A step then skips the check after its script."""
        return self._intact and _holder is self

    def distrust(self) -> None:
        """Code other than derender's may have changed ``bpy.data`` (an agent script ran;
        a person worked in the GUI): the next check compares the frame, and each render
        the cached assets it uses (:func:`.assets.distrust`)."""
        self._intact = False
        assets.distrust()

    def move(self, spec: FrameSpec) -> bool:
        """Put the camera and lights where ``spec`` has them when that is all that differs
        (:func:`.frame_build.move`); True if the frame is now ``spec``'s, False (nothing
        changed) when anything else differs or no frame is built.

        The snapshots are retaken at the new pose, so only trusted code may have run
        since the frame was last found intact (:meth:`reset` checks before it moves)."""
        built = self._live()
        moved = None if built is None else frame_build.move(built, spec)
        if moved is None:
            return False
        self._built = moved
        return True

    def differences(self, spec: FrameSpec) -> list[str]:
        """What differs between the built frame and its snapshot, by path; [] if intact
        and built for ``spec``."""
        return frame_check.differences(self._own(), spec)

    def owns(self, idb: bpy.types.ID) -> bool:
        """True for the frame's own datablocks (camera, lights, ground, world, the scene
        and its UI data), cached assets, and the images Blender keeps for render results."""
        return frame_check.owns(self._own(), idb)

    def adopt_user_data(self) -> int:
        """Count every foreign datablock as part of the frame from now on, except objects
        in the frame's own scene (the agent's stage); returns how many were adopted.

        Inside the Blender GUI the person's own work (objects in their scenes, texts,
        images) lives beside the frame; the GUI session calls this before each request, so
        a reset removes only what that request created. The person may have changed the
        frame too: the frame is distrusted (:meth:`distrust`). Headless workers never
        call it."""
        self.distrust()
        built = self._live()
        if built is None:
            return 0
        staged = {o.session_uid for o in built.scene.objects}
        keep = {i.session_uid for i in frame_check.foreign(built) if i.session_uid not in staged}
        if keep:
            self._built = replace(built, ids=built.ids | keep)
        return len(keep)

    def reset(self, spec: FrameSpec, verified: bool = False) -> None:
        """Return to exactly the frame of ``spec``: foreign datablocks go, and the frame
        is rebuilt from scratch if anything else differs from its snapshot (a spec that
        differs only in the camera's and lights' pose just moves them). Cached assets are
        not compared here: every render compares those it uses
        (:func:`.assets.verify_in_use`).

        ``verified``: the caller compared the frame with its snapshot (:meth:`differences`)
        after the last untrusted code ran and found it intact, and only trusted code ran
        since (a render, a read-back), so comparing again is skipped: the reset removes
        what is foreign (a service passes it after a step that ran no agent code too).

        Afterwards the frame is :attr:`intact`. Raises :class:`FrameBroken` if even the
        rebuilt frame differs."""
        built = self._live()
        if built is None or not frame_build.pose_apart(built.spec, spec):
            self.build(spec)
            return
        if bpy.context.window is not None and bpy.context.scene != built.scene:
            bpy.context.window.scene = built.scene
        foreign = frame_check.foreign(built)
        if foreign:
            bpy.data.batch_remove(foreign)
        assets.trim()
        if not verified:
            # Checked at the pose the script saw, before a move retakes the snapshots.
            if self.differences(built.spec):
                self.build(spec)
                still = self.differences(spec)
                if still:
                    self._intact = False
                    raise FrameBroken("; ".join(still))
                return
        self._intact = self.move(spec)  # reached with pose_apart: it moves
