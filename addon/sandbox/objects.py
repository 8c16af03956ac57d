"""Proxies for the agent's own objects, meshes and modifiers, and the vertex budget.

Only reachable through the ``bpy`` proxy's collections, which list the agent's data, so
a proxy here never wraps a frame datablock. Shared CLEVR assets (the DSL's cached meshes
and materials) are readable but not writable: an edit would leak into the next
request's DSL objects. An object made by a primitive operator shares its mesh too
(:mod:`.primitives`), but the agent sees that mesh as the object's own: a write goes to a
private copy first.
"""

from __future__ import annotations

from typing import Any, cast

import bpy
import numpy as np

from .base import Proxy, owned, plain
from .errors import ResourceLimit
from .geometry import (
    COMMON_MODIFIER_SETTINGS,
    MODIFIER_NAMES,
    MODIFIER_SETTINGS,
    evaluated_vertices,
)
from .materials import unwrap_material, wrap_material
from .primitives import is_primitive_mesh, shade, writable_mesh
from .session import ScriptSession

# -- vertex budget ----------------------------------------------------------------------------
_Stack = list[tuple[str, dict[str, Any]]]


def modifier_stack(obj: bpy.types.Object) -> _Stack:
    stack: _Stack = []
    for mod in obj.modifiers:
        settings = {k: getattr(mod, k) for k in ("levels", "render_levels", "segments") if
                    hasattr(mod, k)}  # fmt: skip
        stack.append((mod.type, settings))
    return stack


def object_vertices(obj: bpy.types.Object, stack: _Stack | None = None) -> int:
    mesh = obj.data
    if not isinstance(mesh, bpy.types.Mesh):
        return 0
    stack = modifier_stack(obj) if stack is None else stack
    counts = (len(mesh.vertices), len(mesh.edges), len(mesh.polygons), len(mesh.loops))
    return evaluated_vertices(*counts, stack)


def largest_valence(mesh: bpy.types.Mesh) -> int:
    """The most corners of any face, or edges at any vertex: what makes subdivision slow.

    OpenSubdiv's cost grows steeply with it, whatever the vertex count: one level on a
    cylinder with 48-gon caps takes 0.5 s here, with 128-gon caps 6 s, with 1000-gon caps
    more than five minutes, all in one uninterruptible C call."""
    corners = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", corners)
    ends = np.empty(2 * len(mesh.edges), dtype=np.int32)
    mesh.edges.foreach_get("vertices", ends)
    valence = np.bincount(ends) if len(ends) else np.zeros(1, np.int64)
    return int(max(corners.max(initial=0), valence.max(initial=0)))


def check_vertices(
    session: ScriptSession, added: int = 0, obj: Any = None, stack: Any = None
) -> None:
    """Abort with ResourceLimit if the agent's geometry would exceed the vertex budget.

    ``added``: vertices of a new object; ``obj``/``stack``: ``obj`` with a changed modifier
    stack (its stored estimate is updated when the change fits).
    """
    estimates = session.data.vertices
    total = sum(estimates.values()) + added
    if obj is not None:
        subdivided = any(kind == "SUBSURF" for kind, _ in stack or modifier_stack(obj))
        cap = session.limits.max_subsurf_valence
        if subdivided and isinstance(obj.data, bpy.types.Mesh):
            valence = largest_valence(obj.data)
            if valence > cap:
                raise session.budget.abort(
                    ResourceLimit(
                        f"subdividing {obj.name!r} would take too long: it has a face or "
                        f"vertex with {valence} corners or edges (limit {cap} under SUBSURF)"
                    )
                )
        new = object_vertices(obj, stack)
        total += new - estimates.get(obj.session_uid, 0)
    limit = session.limits.max_vertices
    if total > limit:
        raise session.budget.abort(
            ResourceLimit(f"the scene would have ~{total} vertices (limit {limit})")
        )
    if obj is not None:
        estimates[obj.session_uid] = new


# -- objects ----------------------------------------------------------------------------------
class ObjectProxy(Proxy):
    __slots__ = ()
    _GET = frozenset({
        "name", "type", "location", "rotation_euler", "rotation_mode", "scale", "dimensions",
        "data", "active_material", "material_slots", "modifiers", "select_get", "select_set",
    })  # fmt: skip
    _SET = frozenset(
        {"name", "location", "rotation_euler", "rotation_mode", "scale", "dimensions",
         "active_material"}
    )  # fmt: skip

    def sbx_names(self) -> frozenset[str]:
        return self._GET

    def sbx_get(self, name: str) -> Any:
        obj = self._real
        if name not in self._GET:
            return self.sbx_missing(name)
        if name == "data":
            return mesh_proxy(self._s, obj) if obj.data else None
        if name == "active_material":
            return wrap_material(self._s, obj.active_material)
        if name == "material_slots":
            return [SlotProxy(self._s, "MaterialSlot", slot) for slot in obj.material_slots]
        if name == "modifiers":
            return ModifiersProxy(self._s, f"{self._label}.modifiers", obj.modifiers, obj)
        if name == "select_set":
            return lambda state=True: obj.select_set(bool(state))
        if name == "select_get":
            return lambda: obj.select_get()
        return getattr(obj, name)

    def sbx_set(self, name: str, value: Any) -> None:
        if name not in self._SET:
            return super().sbx_set(name, value)
        if name == "active_material":
            value = unwrap_material(value)
            writable_mesh(self._s, self._real)  # a new slot may go to the mesh
        setattr(self._real, name, value)
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectProxy) and other._real == self._real

    def __hash__(self) -> int:
        return hash(self._real)

    def __repr__(self) -> str:
        return f"<Object {self._real.name!r}>"


class SlotProxy(Proxy):
    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"material", "name", "link"})

    def sbx_get(self, name: str) -> Any:
        if name == "material":
            return wrap_material(self._s, self._real.material)
        if name in ("name", "link"):
            return getattr(self._real, name)
        return self.sbx_missing(name)

    def sbx_set(self, name: str, value: Any) -> None:
        if name != "material":
            return super().sbx_set(name, value)
        obj = self._real.id_data
        if self._real.link == "DATA" and obj.data is not None:
            _writable(self._s, obj)
        self._real.material = unwrap_material(value)
        return None


def mesh_proxy(session: ScriptSession, obj: bpy.types.Object) -> MeshProxy:
    """The mesh of the agent's ``obj`` as the agent sees it (named as its own)."""
    mesh = cast(bpy.types.Mesh, obj.data)  # the callers pass mesh objects only
    name = session.data.mesh_names.get(obj.session_uid, mesh.name)
    return MeshProxy(session, f"Mesh({name!r})", obj.data, obj)


def _writable(session: ScriptSession, obj: bpy.types.Object) -> bpy.types.Mesh:
    mesh = writable_mesh(session, obj)
    if mesh is None:
        owned(session, obj.data, "mesh")  # raises: a shared CLEVR asset
    return cast(bpy.types.Mesh, mesh)


class MeshProxy(Proxy):
    """A mesh, reached from the object ``_obj`` that uses it (None: from
    ``bpy.data.meshes``, then it is the agent's own)."""

    __slots__ = ("_obj",)

    def __init__(self, session: ScriptSession, label: str, real: Any, obj: Any = None) -> None:
        super().__init__(session, label, real)
        object.__setattr__(self, "_obj", obj)

    def _mesh(self) -> bpy.types.Mesh:
        """The mesh to write: the object's own (copied first if it was shared)."""
        if self._obj is None:
            owned(self._s, self._real, "mesh")
            return self._real
        mesh = _writable(self._s, self._obj)
        object.__setattr__(self, "_real", mesh)
        return mesh

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"name", "materials", "shade_smooth", "shade_flat"})

    def sbx_get(self, name: str) -> Any:
        if name == "name":
            if self._obj is not None and self._obj.data == self._real:
                return self._s.data.mesh_names.get(self._obj.session_uid, self._real.name)
            return self._real.name
        if name == "materials":
            return MeshMaterialsProxy(self._s, f"{self._label}.materials", self)
        if name in ("shade_smooth", "shade_flat"):
            return lambda: self._shade(name == "shade_smooth")
        return self.sbx_missing(name)

    def _shade(self, smooth: bool) -> None:
        obj = self._obj
        if obj is None:
            owned(self._s, self._real, "mesh")
            getattr(self._real, "shade_smooth" if smooth else "shade_flat")()
            return
        if not self._s.data.owns(obj.data) and not is_primitive_mesh(obj.data):
            owned(self._s, obj.data, "mesh")  # raises: a shared CLEVR asset
        shade(self._s, obj, smooth)
        object.__setattr__(self, "_real", obj.data)

    def sbx_set(self, name: str, value: Any) -> None:
        if name != "name":
            return super().sbx_set(name, value)
        self._mesh().name = value
        return None


class MeshMaterialsProxy(Proxy):
    """``mesh.materials`` of a :class:`MeshProxy`: edits go to the mesh it writes."""

    __slots__ = ("_owner",)

    def __init__(self, session: ScriptSession, label: str, owner: MeshProxy) -> None:
        super().__init__(session, label, owner._real)
        object.__setattr__(self, "_owner", owner)

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"append", "clear", "pop"})

    def sbx_get(self, name: str) -> Any:
        if name not in self.sbx_names():
            return self.sbx_missing(name)
        owner: MeshProxy = self._owner

        def edit(*args: Any, **kwargs: Any) -> Any:
            mesh = owner._mesh()
            if name == "append":
                return mesh.materials.append(unwrap_material(*args, **kwargs))
            if name == "pop":
                return wrap_material(self._s, mesh.materials.pop(*args, **kwargs))
            return mesh.materials.clear()

        return edit

    def __len__(self) -> int:
        return len(self._owner._real.materials)

    def __getitem__(self, index: Any) -> Any:
        return wrap_material(self._s, self._owner._real.materials[index])

    def __iter__(self) -> Any:
        return iter([wrap_material(self._s, m) for m in self._owner._real.materials])


# -- modifiers --------------------------------------------------------------------------------
class _OfObject(Proxy):
    """A proxy of something that belongs to one of the agent's objects (its modifiers)."""

    __slots__ = ("_obj",)

    def __init__(
        self, session: ScriptSession, label: str, real: Any, obj: bpy.types.Object
    ) -> None:
        super().__init__(session, label, real)
        object.__setattr__(self, "_obj", obj)


class ModifiersProxy(_OfObject):
    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"new", "remove", "clear", "get"})

    def sbx_get(self, name: str) -> Any:
        if name == "new":
            return self.new
        if name == "remove":
            return lambda mod: self._changed(self._obj.modifiers.remove(self._unwrap(mod)))
        if name == "clear":
            return lambda: self._changed(self._obj.modifiers.clear())
        if name == "get":
            return lambda key, default=None: self[key] if key in self._obj.modifiers else default
        return self.sbx_missing(name)

    def new(self, name: str = "", type: str = "") -> ModifierProxy:
        if type not in MODIFIER_SETTINGS:
            self._s.violation(
                f"modifier type {type!r} is not allowed; allowed: {', '.join(MODIFIER_SETTINGS)}"
            )
        stack = [*modifier_stack(self._obj), (type, {})]
        check_vertices(self._s, obj=self._obj, stack=stack)
        mod = self._obj.modifiers.new(name=str(name) or MODIFIER_NAMES[type], type=type)
        return self._wrap(mod)

    def _changed(self, _: Any = None) -> None:
        """After a removal: the stack shrank, so the estimate can only go down."""
        self._s.data.vertices[self._obj.session_uid] = object_vertices(self._obj)

    def _wrap(self, mod: Any) -> ModifierProxy:
        return ModifierProxy(self._s, f"Modifier({mod.name!r})", mod, self._obj)

    def _unwrap(self, mod: Any) -> Any:
        if not isinstance(mod, ModifierProxy):
            raise TypeError(f"expected a modifier, got {mod!r}")
        return mod._real

    def __getitem__(self, key: Any) -> ModifierProxy:
        return self._wrap(self._obj.modifiers[key])

    def __iter__(self) -> Any:
        return iter([self._wrap(m) for m in self._obj.modifiers])

    def __len__(self) -> int:
        return len(self._obj.modifiers)


class ModifierProxy(_OfObject):
    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return MODIFIER_SETTINGS[self._real.type] | COMMON_MODIFIER_SETTINGS | {"type"}

    def sbx_get(self, name: str) -> Any:
        if name in self.sbx_names():
            return plain(getattr(self._real, name))
        return self.sbx_missing(name)

    def sbx_set(self, name: str, value: Any) -> None:
        if name not in self.sbx_names() - {"type"}:
            return super().sbx_set(name, value)
        if name in ("levels", "render_levels", "segments") and isinstance(value, int):
            value = int(value)  # a subclass may lie in its comparisons, not in its value
            cap = self._s.limits.max_subdiv_levels
            if name != "segments" and value > cap:
                raise self._s.budget.abort(
                    ResourceLimit(f"subdivision {name}={value} is above the sandbox maximum {cap}")
                )
            stack = modifier_stack(self._obj)
            index = list(self._obj.modifiers).index(self._real)
            stack[index][1][name] = value
            check_vertices(self._s, obj=self._obj, stack=stack)
        setattr(self._real, name, value)
        return None
