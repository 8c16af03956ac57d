"""The ``bpy`` a script sees: an explicit allowlist over ops, data and context.

``bpy.ops.mesh.primitive_*_add`` do what the operators do on the data API, with shared
meshes (:mod:`.primitives`; the torus, a Python operator, runs the real one) after their
arguments passed the budget; ``bpy.ops.object`` offers shading, selection, deletion and
``modifier_add`` restricted to the agent's objects; ``bpy.data`` lists only what the agent created;
``bpy.context`` exposes the active/selected agent objects. Everything that belongs to
the frame (camera, lights, ground, world, render settings) raises :class:`FrameLocked`;
anything else Blender has but the allowlist lacks raises :class:`SandboxViolation`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import bpy

from . import primitives
from .base import Namespace, Proxy, lazy
from .errors import FrameLocked, ResourceLimit
from .geometry import PRIMITIVES, check_primitive_args, primitive_vertices
from .materials import wrap_material
from .objects import (
    MeshProxy,
    ModifiersProxy,
    ObjectProxy,
    check_vertices,
    mesh_proxy,
    object_vertices,
)
from .primitives import OPERATORS, add_primitive, is_primitive_mesh, writable_mesh
from .session import ScriptSession

_FRAME_DATA = frozenset({"cameras", "lights", "worlds", "scenes"})
_FRAME_SCENE = frozenset({
    "camera", "world", "render", "eevee", "cycles", "display", "view_settings",
    "display_settings", "frame_set", "use_nodes", "node_tree", "compositing_node_group",
    "sequence_editor", "view_layers", "collection",
})  # fmt: skip


def wrap_object(session: ScriptSession, obj: Any) -> ObjectProxy | None:
    if obj is None or not session.data.owns(obj):
        return None
    return ObjectProxy(session, f"Object({obj.name!r})", obj)


def _agent_object(session: ScriptSession, value: Any) -> bpy.types.Object:
    if not isinstance(value, ObjectProxy):
        raise TypeError(f"expected one of your objects, got {value!r}")
    return value._real


def _selected(session: ScriptSession) -> list[bpy.types.Object]:
    return [o for o, _ in session.data.live_objects() if o.select_get()]


def _active(session: ScriptSession) -> bpy.types.Object | None:
    active = cast(bpy.types.ViewLayer, bpy.context.view_layer).objects.active
    return active if active is not None and session.data.owns(active) else None


def make_bpy(session: ScriptSession) -> Namespace:
    """The ``bpy`` module proxy for one session."""
    ops = Namespace(
        session,
        "bpy.ops",
        {
            "mesh": Namespace(session, "bpy.ops.mesh", _mesh_ops(session), strict=True),
            "object": Namespace(session, "bpy.ops.object", _object_ops(session), strict=True),
        },
        strict=True,
    )
    context = Namespace(
        session,
        "bpy.context",
        {
            "object": lazy(lambda: wrap_object(session, _active(session))),
            "active_object": lazy(lambda: wrap_object(session, _active(session))),
            "selected_objects": lazy(lambda: [wrap_object(session, o) for o in _selected(session)]),
            "scene": lazy(lambda: SceneProxy(session, "bpy.context.scene", bpy.context.scene)),
            "view_layer": lazy(
                lambda: ViewLayerProxy(session, "bpy.context.view_layer", bpy.context.view_layer)
            ),
        },
        bpy.context,
    )
    data = DataProxy(session, "bpy.data", bpy.data)
    return Namespace(session, "bpy", {"ops": ops, "context": context, "data": data}, bpy)


def _mesh_ops(session: ScriptSession) -> dict[str, Callable[..., set[str]]]:
    def make(op: str) -> Callable[..., set[str]]:
        def run(*args: Any, **kwargs: Any) -> set[str]:
            if args:
                raise TypeError(f"bpy.ops.mesh.{op}() takes keyword arguments only")
            problem = check_primitive_args(op, kwargs)
            if problem is not None:
                kind, message = problem
                if kind == "violation":
                    session.violation(message)
                if kind == "limit":
                    raise session.budget.abort(ResourceLimit(message))
                raise ValueError(message)
            session.budget.tick()
            count = len(session.data.live_objects())
            if count >= session.limits.max_objects:
                raise session.budget.abort(
                    ResourceLimit(f"object limit {session.limits.max_objects} reached")
                )
            added = primitive_vertices(op, kwargs)
            if added > session.limits.max_primitive_vertices:
                raise session.budget.abort(
                    ResourceLimit(
                        f"bpy.ops.mesh.{op}() would make {added} vertices "
                        f"(limit {session.limits.max_primitive_vertices} per call)"
                    )
                )
            check_vertices(session, added=added)
            if op in OPERATORS:
                obj = add_primitive(session, op, kwargs)
                session.data.add_object(obj, PRIMITIVES[op][0], object_vertices(obj))
                return {"FINISHED"}
            result = getattr(bpy.ops.mesh, op)(**kwargs)
            # the primitive operator made a new mesh object and made it the active one
            layer = cast(bpy.types.ViewLayer, bpy.context.view_layer)
            obj = cast(bpy.types.Object, layer.objects.active)
            session.data.add_object(obj, PRIMITIVES[op][0], object_vertices(obj))
            session.data.add_id(cast(bpy.types.Mesh, obj.data))
            return set(result)

        return run

    return {op: make(op) for op in PRIMITIVES}


def _object_ops(session: ScriptSession) -> dict[str, Callable[..., set[str]]]:
    def shade(smooth: bool) -> Callable[..., set[str]]:
        def run(keep_sharp_edges: bool = True, **_: Any) -> set[str]:
            # keep_sharp_edges: no agent mesh has sharp edges to keep or clear
            targets = [o for o in _selected(session) if o.type == "MESH"]
            for obj in targets:
                if not session.data.owns(obj.data) and not is_primitive_mesh(obj.data):
                    raise ValueError(f"{obj.name!r} uses a shared CLEVR mesh; it is already shaded")
            if not _selected(session):
                return {"CANCELLED"}
            for obj in targets:
                primitives.shade(session, obj, smooth)
            return {"FINISHED"}

        return run

    def delete(**_: Any) -> set[str]:
        for obj in _selected(session):
            session.data.forget(obj)
            bpy.data.objects.remove(obj, do_unlink=True)
        return {"FINISHED"}

    def select_all(action: str = "TOGGLE") -> set[str]:
        objs = [o for o, _ in session.data.live_objects()]
        if action == "TOGGLE":
            action = "DESELECT" if any(o.select_get() for o in objs) else "SELECT"
        if action not in ("SELECT", "DESELECT", "INVERT"):
            raise ValueError(f"action must be SELECT, DESELECT, INVERT or TOGGLE, got {action!r}")
        for o in objs:
            o.select_set(not o.select_get() if action == "INVERT" else action == "SELECT")
        return {"FINISHED"}

    def modifier_add(type: str = "") -> set[str]:
        active = _active(session)
        if active is None:
            raise RuntimeError("modifier_add: no active object of yours")
        ModifiersProxy(session, "modifiers", active.modifiers, active).new(type=type)
        return {"FINISHED"}

    return {
        "shade_smooth": shade(True),
        "shade_flat": shade(False),
        "delete": delete,
        "select_all": select_all,
        "modifier_add": modifier_add,
    }


class SceneProxy(Proxy):
    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"objects"})

    def sbx_get(self, name: str) -> Any:
        if name == "objects":
            return AgentObjects(self._s, "bpy.context.scene.objects")
        if name in _FRAME_SCENE:
            self._s.violation(f"scene.{name} belongs to the locked frame", FrameLocked)
        return self.sbx_missing(name)


class ViewLayerProxy(Proxy):
    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"objects", "update"})

    def sbx_get(self, name: str) -> Any:
        if name == "objects":
            return AgentObjects(self._s, "bpy.context.view_layer.objects", with_active=True)
        if name == "update":
            return lambda: self._real.update()
        return self.sbx_missing(name)


class DataProxy(Proxy):
    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"objects", "meshes", "materials"})

    def sbx_get(self, name: str) -> Any:
        if name == "objects":
            return AgentObjects(self._s, "bpy.data.objects")
        if name == "materials":
            return AgentMaterials(self._s, "bpy.data.materials")
        if name == "meshes":
            return AgentMeshes(self._s, "bpy.data.meshes")
        if name in _FRAME_DATA:
            self._s.violation(f"bpy.data.{name} belongs to the locked frame", FrameLocked)
        return self.sbx_missing(name)


class _AgentCollection(Proxy):
    """A read view of one kind of the agent's datablocks, with name and index lookup."""

    __slots__ = ()
    kind = "datablock"

    def items(self) -> list[Any]:
        raise NotImplementedError

    def wrap(self, idb: Any) -> Any:
        raise NotImplementedError

    def real_collection(self) -> Any:
        raise NotImplementedError

    def item_name(self, idb: Any) -> str:
        return idb.name

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"get", "remove", "keys"})

    def sbx_get(self, name: str) -> Any:
        if name == "get":
            return self.sbx_mapping_get()
        if name == "keys":
            return lambda: [self.item_name(idb) for idb in self.items()]
        if name == "remove":
            return self.remove
        if name == "new":
            self._s.violation(f"{self._label}.new is not allowed; use the primitive operators")
        return self.sbx_missing(name)

    def remove(self, value: Any, do_unlink: bool = True, **_: Any) -> None:
        real = getattr(value, "_real", None) if isinstance(value, Proxy) else None
        if isinstance(value, MeshProxy) and value._obj is not None:
            real = writable_mesh(self._s, value._obj)  # a shared one: the object's copy
        if real is None or not self._s.data.owns(real):
            raise TypeError(f"{self._label}.remove() takes one of your {self.kind}s, got {value!r}")
        if isinstance(real, bpy.types.Object):
            self._s.data.forget(real)
        self.real_collection().remove(real, do_unlink=True)

    def __getitem__(self, key: Any) -> Any:
        items = self.items()
        if isinstance(key, int) and not isinstance(key, bool):
            return self.wrap(items[key])
        if not isinstance(key, str):
            raise TypeError(f"{self._label} keys are names or indices, got {key!r}")
        for idb in items:
            if self.item_name(idb) == key:
                return self.wrap(idb)
        other = self.real_collection().get(key)
        if other is not None and self._s.frame.owns(other):
            self._s.violation(f"{self.kind} {key!r} belongs to the locked frame", FrameLocked)
        raise KeyError(f"{self._label}[{key!r}]: no {self.kind} of yours has that name")

    def __contains__(self, key: Any) -> bool:
        return any(self.item_name(idb) == key for idb in self.items())

    def __iter__(self) -> Iterator[Any]:
        return iter([self.wrap(idb) for idb in self.items()])

    def __len__(self) -> int:
        return len(self.items())


class AgentObjects(_AgentCollection):
    __slots__ = ("_with_active",)
    kind = "object"

    def __init__(self, session: ScriptSession, label: str, with_active: bool = False) -> None:
        super().__init__(session, label, bpy.data.objects)
        object.__setattr__(self, "_with_active", with_active)

    def items(self) -> list[Any]:
        return [o for o, _ in self._s.data.live_objects()]

    def wrap(self, idb: Any) -> Any:
        return wrap_object(self._s, idb)

    def real_collection(self) -> Any:
        return bpy.data.objects

    def sbx_names(self) -> frozenset[str]:
        return super().sbx_names() | ({"active"} if self._with_active else set())

    def sbx_get(self, name: str) -> Any:
        if name == "active" and self._with_active:
            return wrap_object(self._s, _active(self._s))
        return super().sbx_get(name)

    def sbx_set(self, name: str, value: Any) -> None:
        if name == "active" and self._with_active:
            obj = None if value is None else _agent_object(self._s, value)
            cast(bpy.types.ViewLayer, bpy.context.view_layer).objects.active = obj
            return None
        return super().sbx_set(name, value)


class AgentMaterials(_AgentCollection):
    __slots__ = ()
    kind = "material"

    def __init__(self, session: ScriptSession, label: str) -> None:
        super().__init__(session, label, bpy.data.materials)

    def items(self) -> list[Any]:
        return [i for i in self._s.data.live_ids() if isinstance(i, bpy.types.Material)]

    def wrap(self, idb: Any) -> Any:
        return wrap_material(self._s, idb)

    def real_collection(self) -> Any:
        return bpy.data.materials

    def sbx_names(self) -> frozenset[str]:
        return super().sbx_names() | {"new"}

    def sbx_get(self, name: str) -> Any:
        return self.new if name == "new" else super().sbx_get(name)

    def new(self, name: str = "Material") -> Any:
        self._s.budget.tick()
        if len(self.items()) >= self._s.limits.max_objects:
            raise self._s.budget.abort(
                ResourceLimit(f"material limit {self._s.limits.max_objects} reached")
            )
        mat = bpy.data.materials.new(str(name))
        self._s.data.add_id(mat)
        if mat.node_tree is not None:  # sockets report their embedded tree as owner
            self._s.data.add_id(mat.node_tree)
        return wrap_material(self._s, mat)


class AgentMeshes(_AgentCollection):
    __slots__ = ()
    kind = "mesh"

    def __init__(self, session: ScriptSession, label: str) -> None:
        super().__init__(session, label, bpy.data.meshes)

    def items(self) -> list[Any]:
        """The agent's own meshes, and the shared one of each object made by a primitive
        operator (which the agent sees as that object's own)."""
        own = [i for i in self._s.data.live_ids() if isinstance(i, bpy.types.Mesh)]
        return own + [o for o, _ in self._s.data.live_objects() if self._shared(o)]

    def item_name(self, idb: Any) -> str:
        if isinstance(idb, bpy.types.Object):
            data = cast(bpy.types.ID, idb.data)  # a mesh collection lists mesh objects
            return self._s.data.mesh_names.get(idb.session_uid, data.name)
        return idb.name

    def _shared(self, obj: bpy.types.Object) -> bool:
        return obj.session_uid in self._s.data.mesh_names and is_primitive_mesh(obj.data)

    def wrap(self, idb: Any) -> Any:
        if isinstance(idb, bpy.types.Object):
            return mesh_proxy(self._s, idb)
        return MeshProxy(self._s, f"Mesh({idb.name!r})", idb)

    def real_collection(self) -> Any:
        return bpy.data.meshes
