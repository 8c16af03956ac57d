"""Proxies for materials: the Principled BSDF's inputs and the viewport values only.

No node can be created or linked (no image textures, no OSL script nodes), and shared
CLEVR asset materials are read-only (see :func:`base.owned`).
"""

from __future__ import annotations

from typing import Any

import bpy

from ..compat import principled_bsdf
from .base import Proxy, owned, plain
from .session import ScriptSession


def wrap_material(session: ScriptSession, mat: Any) -> MaterialProxy | None:
    return None if mat is None else MaterialProxy(session, f"Material({mat.name!r})", mat)


def unwrap_material(value: Any = None) -> bpy.types.Material | None:
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
        return plain(getattr(self._real, name))

    def sbx_set(self, name: str, value: Any) -> None:
        if name not in self._SET:
            return super().sbx_set(name, value)
        owned(self._s, self._real, "material")
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
            return self.sbx_mapping_get()
        if name in ("new", "remove", "clear", "links"):
            self._s.violation(
                f"{self._label}.{name} is not allowed: only the Principled "
                "BSDF's inputs can be set in the sandbox"
            )
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
            return self.sbx_mapping_get((KeyError, IndexError))
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
            return plain(getattr(self._real, name))
        return self.sbx_missing(name)

    def sbx_set(self, name: str, value: Any) -> None:
        if name != "default_value":
            return super().sbx_set(name, value)
        owned(self._s, self._real.id_data, "material")
        self._real.default_value = value
        return None
