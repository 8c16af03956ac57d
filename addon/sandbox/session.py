"""The state of one sandboxed request: budget, captured output and what the agent made."""

from __future__ import annotations

import random
from typing import Any

import bpy

from ..frame import BuiltFrame
from .errors import SandboxViolation
from .limits import Budget, ScriptLimits


class AgentData:
    """Objects, meshes and materials the script created, in creation order, by identity.

    Identity is Blender's ``session_uid``, which is never reused within a process. An
    ``as_pointer()`` address is: a script that frees its own material and then makes the
    DSL create a cached asset at the same address would own that shared asset by address.
    Ownership is not by name either: renaming an object to "Camera" does not make it the
    camera, and the frame's datablocks are never in here.
    """

    def __init__(self) -> None:
        # uid -> (object, shape it was created as: "cube"/"sphere"/"cylinder"/None)
        self.objects: dict[int, tuple[bpy.types.Object, str | None]] = {}
        self.ids: dict[int, bpy.types.ID] = {}  # meshes and materials
        self.vertices: dict[int, int] = {}  # object uid -> evaluated vertex estimate
        # object uid -> the name its mesh would have had, for objects whose mesh is a
        # shared primitive mesh (see primitives.add_primitive): the agent's view of it
        self.mesh_names: dict[int, str] = {}

    def add_id(self, idb: bpy.types.ID) -> None:
        self.ids[idb.session_uid] = idb

    def add_object(self, obj: bpy.types.Object, shape: str | None, vertices: int) -> None:
        self.objects[obj.session_uid] = (obj, shape)
        self.vertices[obj.session_uid] = vertices

    def owns(self, idb: Any) -> bool:
        try:
            uid = idb.session_uid
        except (ReferenceError, AttributeError):
            return False
        return uid in self.objects or uid in self.ids

    def live_objects(self) -> list[tuple[bpy.types.Object, str | None]]:
        """The agent's objects that still exist, in creation order."""
        return [(obj, shape) for obj, shape in self.objects.values() if _alive(obj)]

    def live_ids(self) -> list[bpy.types.ID]:
        return [idb for idb in self.ids.values() if _alive(idb)]

    def forget(self, obj: bpy.types.Object) -> None:
        self.objects.pop(obj.session_uid, None)
        self.vertices.pop(obj.session_uid, None)
        self.mesh_names.pop(obj.session_uid, None)


def _alive(idb: bpy.types.ID) -> bool:
    try:
        idb.name  # noqa: B018 - raises ReferenceError once Blender freed it
    except ReferenceError:
        return False
    return True


class Output:
    """``print`` capture with a byte cap: extra output is dropped and the cut is marked."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def write(self, text: str) -> None:
        if self.truncated:
            return
        room = self.limit - self.size
        if len(text) > room:
            text = text[: max(room, 0)]
            self.truncated = True
        self.parts.append(text)
        self.size += len(text)

    def text(self) -> str:
        out = "".join(self.parts)
        return out + f"\n[output truncated at {self.limit} characters]\n" if self.truncated else out


class ScriptSession:
    """Everything one script run may touch, shared by guards, proxies and the DSL."""

    def __init__(self, frame: BuiltFrame, limits: ScriptLimits, seed: int) -> None:
        self.frame = frame  # the frame the script runs in: what the proxies refuse
        self.limits = limits
        self.budget = Budget(limits)
        self.data = AgentData()
        self.output = Output(limits.max_output_bytes)
        self.rng = random.Random(seed)

    def violation(self, message: str, kind: type[SandboxViolation] = SandboxViolation) -> None:
        """Raise (and record, so it cannot be swallowed) a sandbox violation."""
        raise self.budget.abort(kind(message))
