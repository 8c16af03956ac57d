"""Proxies for the agent's own datablocks: objects, meshes, materials, nodes, modifiers.

Only reachable through :class:`~.proxy.BpyProxy` collections that list the agent's data,
so a proxy here never wraps a frame datablock. Shared CLEVR assets (the DSL's cached
meshes and materials) are readable but not writable: an edit would leak into the next
request's DSL objects.
"""

from __future__ import annotations

from typing import Any

import bpy

from ..compat import principled_bsdf
from .base import Proxy
from .errors import ResourceLimit
from .geometry import (
    COMMON_MODIFIER_SETTINGS,
    MODIFIER_NAMES,
    MODIFIER_SETTINGS,
    evaluated_vertices,
)
from .session import Session


def _plain(value: Any) -> Any:
    """bpy arrays as tuples (they have no safe attributes of their own)."""
    if isinstance(value, bpy.types.bpy_prop_array):
        return tuple(value)
    return value


def _owned(session: Session, idb: Any, what: str) -> None:
    if not session.data.owns(idb):
        raise ValueError(
            f"{what} {idb.name!r} is a shared CLEVR asset and read-only; "
            "create your own with bpy.ops.mesh.primitive_*_add / bpy.data.materials.new"
        )


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
    return evaluated_vertices(len(mesh.vertices), len(mesh.edges), len(mesh.polygons), stack)


def check_vertices(session: Session, added: int = 0, obj: Any = None, stack: Any = None) -> None:
    """Abort with ResourceLimit if the agent's geometry would exceed the vertex budget."""
    total = added
    for other, _ in session.data.live_objects():
        total += object_vertices(other, stack if obj is not None and other == obj else None)
    limit = session.limits.max_vertices
    if total > limit:
        raise session.budget.abort(
            ResourceLimit(f"the scene would have ~{total} vertices (limit {limit})")
        )


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
            return MeshProxy(self._s, f"Mesh({obj.data.name!r})", obj.data) if obj.data else None
        if name == "active_material":
            return wrap_material(self._s, obj.active_material)
        if name == "material_slots":
            return [SlotProxy(self._s, "MaterialSlot", slot) for slot in obj.material_slots]
        if name == "modifiers":
            return ModifiersProxy(self._s, f"{self._label}.modifiers", obj.modifiers, obj)
        if name == "select_set":
            return lambda state=True: obj.select_set(bool(state))
        return getattr(obj, name)

    def sbx_set(self, name: str, value: Any) -> None:
        if name not in self._SET:
            return super().sbx_set(name, value)
        if name == "active_material":
            value = unwrap_material(self._s, value)
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
        mesh_linked = self._real.link == "DATA"
        if mesh_linked and self._real.id_data.data is not None:
            _owned(self._s, self._real.id_data.data, "mesh")
        self._real.material = unwrap_material(self._s, value)
        return None


class MeshProxy(Proxy):
    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"name", "materials", "shade_smooth", "shade_flat"})

    def sbx_get(self, name: str) -> Any:
        mesh = self._real
        if name == "name":
            return mesh.name
        if name == "materials":
            return MeshMaterialsProxy(self._s, f"{self._label}.materials", mesh)
        if name in ("shade_smooth", "shade_flat"):
            def shade() -> None:
                _owned(self._s, mesh, "mesh")
                getattr(mesh, name)()
            return shade
        return self.sbx_missing(name)

    def sbx_set(self, name: str, value: Any) -> None:
        if name != "name":
            return super().sbx_set(name, value)
        _owned(self._s, self._real, "mesh")
        self._real.name = value
        return None


class MeshMaterialsProxy(Proxy):
    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"append", "clear", "pop"})

    def sbx_get(self, name: str) -> Any:
        mesh = self._real
        if name not in self.sbx_names():
            return self.sbx_missing(name)

        def edit(*args: Any, **kwargs: Any) -> Any:
            _owned(self._s, mesh, "mesh")
            if name == "append":
                return mesh.materials.append(unwrap_material(self._s, *args, **kwargs))
            if name == "pop":
                return wrap_material(self._s, mesh.materials.pop(*args, **kwargs))
            return mesh.materials.clear()

        return edit

    def __len__(self) -> int:
        return len(self._real.materials)

    def __getitem__(self, index: Any) -> Any:
        return wrap_material(self._s, self._real.materials[index])

    def __iter__(self) -> Any:
        return iter([wrap_material(self._s, m) for m in self._real.materials])


# -- materials --------------------------------------------------------------------------------
def wrap_material(session: Session, mat: Any) -> MaterialProxy | None:
    return None if mat is None else MaterialProxy(session, f"Material({mat.name!r})", mat)


def unwrap_material(session: Session, value: Any = None) -> bpy.types.Material | None:
    if value is None:
        return None
    if not isinstance(value, MaterialProxy):
        raise TypeError(f"expected a material from bpy.data.materials.new, got {value!r}")
    return value._real


class MaterialProxy(Proxy):
    __slots__ = ()
    _GET = frozenset({"name", "diffuse_color", "metallic", "roughness", "node_tree", "use_nodes"})
    _SET = frozenset({"name", "diffuse_color", "metallic", "roughness", "use_nodes"})

    def sbx_names(self) -> frozenset[str]:
        return self._GET

    def sbx_get(self, name: str) -> Any:
        if name not in self._GET:
            return self.sbx_missing(name)
        if name == "node_tree":
            return NodeTreeProxy(self._s, f"{self._label}.node_tree", self._real)
        return _plain(getattr(self._real, name))

    def sbx_set(self, name: str, value: Any) -> None:
        if name not in self._SET:
            return super().sbx_set(name, value)
        _owned(self._s, self._real, "material")
        if name == "use_nodes":
            return None  # always on in Blender 5; accepted for older scripts
        setattr(self._real, name, value)
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaterialProxy) and other._real == self._real

    def __hash__(self) -> int:
        return hash(self._real)


class NodeTreeProxy(Proxy):
    """A material's node tree: only its Principled BSDF is reachable (no new nodes, no
    links: no image textures, no OSL script nodes)."""

    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"nodes"})

    def sbx_get(self, name: str) -> Any:
        if name == "nodes":
            return NodesProxy(self._s, f"{self._label}.nodes", self._real)
        if hasattr(self._real.node_tree, name):  # links, interface, ...
            self._s.violation(f"{self._label}.{name} is not allowed in the sandbox")
        return self.sbx_missing(name)


class NodesProxy(Proxy):
    __slots__ = ()

    def _bsdf(self) -> Any:
        try:
            return principled_bsdf(self._real)
        except RuntimeError:
            return None

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"get"})

    def sbx_get(self, name: str) -> Any:
        if name == "get":
            def get(key: Any, default: Any = None) -> Any:
                try:
                    return self[key]
                except KeyError:
                    return default
            return get
        if name in ("new", "remove", "clear", "links"):
            self._s.violation(f"{self._label}.{name} is not allowed: only the Principled "
                              "BSDF's inputs can be set in the sandbox")
        return self.sbx_missing(name)

    def __getitem__(self, key: Any) -> Any:
        bsdf = self._bsdf()
        if bsdf is not None and key in (bsdf.name, 0, "Principled BSDF"):
            return NodeProxy(self._s, f"{self._label}[{bsdf.name!r}]", bsdf)
        nodes = self._real.node_tree.nodes
        if isinstance(key, str) and key in nodes:
            self._s.violation(f"node {key!r}: only the Principled BSDF node is accessible")
        raise KeyError(f"no node {key!r} (the Principled BSDF is {getattr(bsdf, 'name', None)!r})")

    def __iter__(self) -> Any:
        bsdf = self._bsdf()
        return iter([] if bsdf is None else [self[bsdf.name]])

    def __len__(self) -> int:
        return 0 if self._bsdf() is None else 1


class NodeProxy(Proxy):
    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"name", "type", "inputs"})

    def sbx_get(self, name: str) -> Any:
        if name in ("name", "type"):
            return getattr(self._real, name)
        if name == "inputs":
            return InputsProxy(self._s, f"{self._label}.inputs", self._real)
        return self.sbx_missing(name)


class InputsProxy(Proxy):
    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"get"})

    def sbx_get(self, name: str) -> Any:
        if name == "get":
            def get(key: Any, default: Any = None) -> Any:
                try:
                    return self[key]
                except (KeyError, IndexError):
                    return default
            return get
        return self.sbx_missing(name)

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, str | int) or isinstance(key, bool):
            raise TypeError(f"node inputs are indexed by name or number, got {key!r}")
        socket = self._real.inputs[key]
        return SocketProxy(self._s, f"{self._label}[{socket.name!r}]", socket)

    def __len__(self) -> int:
        return len(self._real.inputs)


class SocketProxy(Proxy):
    __slots__ = ()

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"name", "type", "default_value"})

    def sbx_get(self, name: str) -> Any:
        if name in self.sbx_names():
            return _plain(getattr(self._real, name))
        return self.sbx_missing(name)

    def sbx_set(self, name: str, value: Any) -> None:
        if name != "default_value":
            return super().sbx_set(name, value)
        _owned(self._s, self._real.id_data, "material")
        self._real.default_value = value
        return None


# -- modifiers --------------------------------------------------------------------------------
class ModifiersProxy(Proxy):
    __slots__ = ("_obj",)

    def __init__(self, session: Session, label: str, real: Any, obj: bpy.types.Object) -> None:
        super().__init__(session, label, real)
        object.__setattr__(self, "_obj", obj)

    def sbx_names(self) -> frozenset[str]:
        return frozenset({"new", "remove", "clear", "get"})

    def sbx_get(self, name: str) -> Any:
        if name == "new":
            return self.new
        if name == "remove":
            return lambda mod: self._obj.modifiers.remove(self._unwrap(mod))
        if name == "clear":
            return self._obj.modifiers.clear
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


class ModifierProxy(Proxy):
    __slots__ = ("_obj",)

    def __init__(self, session: Session, label: str, real: Any, obj: bpy.types.Object) -> None:
        super().__init__(session, label, real)
        object.__setattr__(self, "_obj", obj)

    def sbx_names(self) -> frozenset[str]:
        return MODIFIER_SETTINGS[self._real.type] | COMMON_MODIFIER_SETTINGS | {"type"}

    def sbx_get(self, name: str) -> Any:
        if name in self.sbx_names():
            return _plain(getattr(self._real, name))
        return self.sbx_missing(name)

    def sbx_set(self, name: str, value: Any) -> None:
        if name not in self.sbx_names() - {"type"}:
            return super().sbx_set(name, value)
        if name in ("levels", "render_levels"):
            cap = self._s.limits.max_subdiv_levels
            if isinstance(value, int) and value > cap:
                raise self._s.budget.abort(
                    ResourceLimit(f"subdivision {name}={value} is above the sandbox maximum {cap}")
                )
        if name in ("levels", "render_levels", "segments") and isinstance(value, int):
            stack = modifier_stack(self._obj)
            index = list(self._obj.modifiers).index(self._real)
            stack[index][1][name] = value
            check_vertices(self._s, obj=self._obj, stack=stack)
        setattr(self._real, name, value)
        return None
