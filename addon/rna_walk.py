"""How a snapshot walks a datablock's RNA (:mod:`.rna_snapshot` keeps and compares the
result).

The walk, per struct, in RNA order:

- writable booleans, ints, floats, strings and enums (read-only ones are derived), read in
  one call per struct (an ``attrgetter`` of the type's plan);
- a pointer to another datablock is recorded by its ``session_uid`` (unique for the whole
  Blender session, never reused, unlike ``as_pointer()``), and not followed: that
  datablock has a snapshot of its own; embedded datablocks (a material's node tree) are
  walked as part of their owner;
- a pointer to a struct is walked, once: a struct reached again (a link's ``from_socket``)
  is recorded by where the walk first met it, so rewiring shows as a change;
- a collection is walked item by item; long collections of plain items (attribute data)
  are read with ``foreach_get`` per numeric property instead;
- a mesh's element views (``vertices``, ``edges``, ``loops``, ``polygons``, a UV layer's
  ``data``) are views of its attribute layers, which the walk reads whole: only what the
  layers do not hold is read from the views (the face offsets; per vertex, the
  vertex-group weights of a short mesh, as for any short collection). Reading them item
  by item costs a hundred times more than the layers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any

import bpy
import numpy as np

# Never compared: identity and bookkeeping that change without any edit (users, tags,
# evaluated copies), deprecated aliases that warn when read, and properties derived from
# others (normals, triangulation) that would only repeat what their sources show.
_SKIPPED = frozenset(
    {
        "rna_type", "original", "users", "session_uid", "is_evaluated", "is_runtime_data",
        "tag", "is_missing", "use_extra_user", "is_embedded_data", "is_editmode", "name_full",
        "library_weak_reference", "override_library", "preview", "use_nodes", "id_data",
        "node", "internal_links", "loop_triangles", "loop_triangle_polygons",
        "vertex_normals", "polygon_normals", "corner_normals", "depsgraph",
        "matrix_world", "matrix_local", "matrix_basis",  # derived from location/rotation/scale
    }
)  # fmt: skip
# Per struct type: a view layer's objects and a collection's light-linking entries mirror
# the collections' own ``objects``/``children`` (walked there, with the agent's left out);
# the render's output path is set by each render to the worker's private directory.
_SKIPPED_IN = frozenset(
    {
        ("ViewLayer", "objects"),
        ("Collection", "collection_objects"),
        ("Collection", "collection_children"),
        ("RenderSettings", "filepath"),
    }
)
# Reading these logs a Blender warning (their enum holds no valid value until set).
_UNREADABLE = frozenset(
    {"sequencer_colorspace_settings", "wireframe_color_type", "linear_colorspace_settings"}
)
# Variable-length arrays foreach_get cannot read (a polygon's vertices: the loops' vertex
# indices and the polygons' loop starts say the same).
_DYNAMIC_ARRAYS = frozenset({("MeshPolygon", "vertices")})
# Element views of a mesh's attribute layers (see the module docstring) -> what is read
# of them besides the layers: the numeric properties listed, for every item, and, when
# ``short`` is set, every item walked in full if the view is short.
_ATTRIBUTE_VIEWS: dict[tuple[str, str], tuple[tuple[str, ...], bool]] = {
    ("Mesh", "vertices"): ((), True),  # MeshVertex.groups: vertex-group weights
    ("Mesh", "edges"): ((), False),
    ("Mesh", "loops"): ((), False),
    ("Mesh", "polygons"): (("loop_start",), False),  # the face offsets
    ("MeshUVLoopLayer", "data"): ((), False),
    ("MeshUVLoopLayer", "uv"): ((), False),
    ("MeshUVLoopLayer", "vertex_selection"): ((), False),
    ("MeshUVLoopLayer", "edge_selection"): ((), False),
    ("MeshUVLoopLayer", "pin"): ((), False),
}
# Collections longer than this are compared per numeric property with foreach_get.
_ARRAY_THRESHOLD = 32
_NUMERIC_TYPES = frozenset({"BOOLEAN", "INT", "FLOAT"})
_DTYPES = {"BOOLEAN": np.bool_, "INT": np.int32, "FLOAT": np.float32}


_POINTER, _COLLECTION = "pointer", "collection"
# bpy.types looks names up in RNA on every access: once here, not per value.
_ID, _STRUCT = bpy.types.ID, bpy.types.bpy_struct
_NONE: frozenset[str] = frozenset()
_Reads = tuple[tuple[str, ...], bool]  # what an attribute view reads: see _ATTRIBUTE_VIEWS


def _getter(names: list[str]) -> Callable[[Any], tuple] | None:
    """One C call that reads ``names`` of a struct as a tuple (an attrgetter)."""
    if not names:
        return None
    getter = operator.attrgetter(*names)
    return getter if len(names) > 1 else (lambda struct: (getter(struct),))


class _Plan:
    """What the walk reads of one RNA type, in RNA order: its plain values (writable
    booleans, numbers, strings, enums) in one call, its numeric arrays, then its links
    (pointers, collections) in one call; and, for a collection of items of this type read
    with ``foreach_get``, ``numeric``: (identifier, type, length) of each writable numeric
    property."""

    __slots__ = (
        "arrays", "count", "flags", "link_kinds", "link_names", "links", "names", "numeric",
        "plain", "values",
    )  # fmt: skip

    def __init__(self, rna: Any) -> None:
        owner = rna.identifier
        self.count = len(rna.properties)  # a reference walk compares it (see Walk)
        names: list[str] = []
        arrays: list[tuple[str, bool]] = []  # (identifier, nested: a matrix)
        flags: list[int] = []  # indices in names of enum flags (sets)
        links: list[str] = []
        kinds: list[str | _Reads] = []
        self.plain = True  # numeric values only: a collection of these is read by foreach
        for prop in rna.properties:
            ident = prop.identifier
            if ident in _SKIPPED or ident in _UNREADABLE or (owner, ident) in _SKIPPED_IN:
                continue
            if prop.type in ("POINTER", "COLLECTION"):
                links.append(ident)
                view = _ATTRIBUTE_VIEWS.get((owner, ident))
                kinds.append(_POINTER if prop.type == "POINTER" else view or _COLLECTION)
                self.plain = False
            elif not prop.is_readonly:
                self.plain &= prop.type in _NUMERIC_TYPES
                if prop.type in _NUMERIC_TYPES and getattr(prop, "is_array", False):
                    dims = [d for d in getattr(prop, "array_dimensions", ()) if d]
                    arrays.append((ident, len(dims) > 1))
                    continue
                if prop.type == "ENUM" and prop.is_enum_flag:
                    flags.append(len(names))
                names.append(ident)
        self.names, self.arrays, self.flags = tuple(names), tuple(arrays), tuple(flags)
        self.link_names, self.link_kinds = tuple(links), tuple(kinds)
        self.values, self.links = _getter(names), _getter(links)
        self.numeric = tuple(
            (p.identifier, p.type, _length(p))
            for p in rna.properties
            if p.type in _NUMERIC_TYPES
            and not p.is_readonly
            and p.identifier not in _SKIPPED
            and (owner, p.identifier) not in _DYNAMIC_ARRAYS
        )


def _read(struct: Any, ident: str) -> Any:
    try:
        return getattr(struct, ident)
    except (AttributeError, RuntimeError, TypeError) as exc:
        return f"unreadable: {type(exc).__name__}"


_plans: dict[type, _Plan] = {}


def _plan(struct: Any, fresh: bool = False) -> _Plan:
    """What the walk reads of ``struct``'s type. ``fresh`` (a reference walk): made again
    if the type's RNA changed since (see :class:`Walk`)."""
    cls = type(struct)
    found = _plans.get(cls)
    if found is None or (fresh and found.count != len(struct.bl_rna.properties)):
        found = _plans[cls] = _Plan(struct.bl_rna)
    return found


def _length(prop: Any) -> int:
    """Values per item of a numeric property (a 4×4 matrix is 16)."""
    dims = [d for d in getattr(prop, "array_dimensions", ()) if d]
    return int(np.prod(dims)) if dims else 1


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, set):
        return frozenset(value)
    try:
        return tuple(_plain(v) for v in value)  # arrays, vectors, matrices (rows)
    except TypeError:
        return repr(value)


class Walk:
    """One walk. With ``paths`` (reference snapshots, messages) each value gets where it
    came from: a path, or (path, names) for the values of a struct read in one call; a
    check passes ``path=None`` down and builds no string at all.

    A walk with paths also plans again each type it meets whose RNA changed since it was
    planned: add-ons register properties at runtime (the panel's ``Scene.derender``), and
    the checks after a reference must read what it read. Told by the property count
    (registering adds properties, unregistering removes them), one call per struct; the
    plans of other types are kept (making all ~150 again costs ~8 ms, and every new
    shared mesh takes a reference snapshot)."""

    __slots__ = ("out", "paths", "protected", "seen")

    def __init__(self, protected: frozenset[int] | None, paths: bool) -> None:
        self.out: list[Any] = []
        self.paths: list[Any] | None = [] if paths else None
        # (address, type) -> index of the struct's first value: a nested struct may share
        # its owner's address (a world's mist settings are fields of the world).
        self.seen: dict[tuple[int, type], int] = {}
        self.protected = protected

    def put(self, value: Any, path: Any) -> None:
        self.out.append(value)
        if self.paths is not None:
            self.paths.append(path)

    def struct(self, struct: Any, path: str | None, skip: frozenset[str] = _NONE) -> None:
        out, paths = self.out, self.paths
        self.seen[(struct.as_pointer(), type(struct))] = len(out)
        if paths is None:  # a check: the plan its reference made or kept
            plan = _plans.get(type(struct)) or _plan(struct)
        else:
            plan = _plan(struct, fresh=True)
        if plan.values is not None:
            try:
                values = plan.values(struct)
            except (AttributeError, RuntimeError, TypeError):
                values = tuple(_read(struct, name) for name in plan.names)
            if plan.flags:
                values = tuple(frozenset(v) if isinstance(v, set) else v for v in values)
            names = plan.names
            if skip:
                kept = [i for i, n in enumerate(names) if n not in skip]
                values, names = tuple(values[i] for i in kept), tuple(names[i] for i in kept)
            out.append(values)
            if paths is not None:
                paths.append((path, names))
        for ident, nested in plan.arrays:
            if skip and ident in skip:
                continue
            try:
                value = getattr(struct, ident)
                value = tuple(map(tuple, value)) if nested else tuple(value)
            except (AttributeError, RuntimeError, TypeError) as exc:
                value = f"unreadable: {type(exc).__name__}"
            out.append(value)
            if paths is not None:
                paths.append(f"{path}.{ident}")
        if plan.links is None:
            return
        try:
            links = plan.links(struct)
        except (AttributeError, RuntimeError, TypeError):
            links = tuple(_read(struct, name) for name in plan.link_names)
        for name, kind, value in zip(plan.link_names, plan.link_kinds, links):  # noqa: B905
            if skip and name in skip:
                continue
            here = None if path is None else f"{path}.{name}"
            if value is None:  # most pointers: no animation data, no library ...
                out.append(None)
                if paths is not None:
                    paths.append(here)
            elif kind is _POINTER:
                self.pointer(value, here)
            elif isinstance(value, str):  # unreadable
                self.put(value, here)
            elif kind is _COLLECTION:
                self.collection(value, here)
            else:
                self.view(value, here, kind)  # type: ignore[arg-type]

    def pointer(self, value: Any, path: str | None) -> None:
        if isinstance(value, _STRUCT):
            if isinstance(value, _ID) and not value.is_embedded_data:
                self.put(self.identity(value), path)
                return
            first = self.seen.get((value.as_pointer(), type(value)))
            if first is None:
                self.struct(value, path)
            else:
                self.put(("ref", first), path)
        elif value is None or isinstance(value, str):
            self.put(value, path)
        else:
            self.put(_plain(value), path)

    def identity(self, idb: bpy.types.ID) -> tuple[str, str, int | None]:
        uid = idb.session_uid
        if self.protected is not None and uid not in self.protected:
            return ("id", "foreign", None)
        return ("id", type(idb).__name__, uid)

    def collection(self, items: Any, path: str | None) -> None:
        count = len(items)
        if not count:
            self.put(0, None if path is None else f"{path}#len")
            return
        first = items[0]
        if isinstance(first, _ID) and not first.is_embedded_data:
            # A collection of datablocks (a collection's objects): which protected ones it
            # holds, in order; the agent's own are not the frame's business.
            ids = [self.identity(idb) for idb in items]
            self.put(tuple(i for i in ids if i[1] != "foreign"), path)
            return
        self.put(count, None if path is None else f"{path}#len")
        # Long: numeric values only. Short and plain (attribute values): the same values
        # as item by item, in one call per property.
        fresh = self.paths is not None
        kind = _plan(first, fresh) if isinstance(first, _STRUCT) else None
        plain = kind is not None and kind.plain
        if hasattr(items, "foreach_get") and (count > _ARRAY_THRESHOLD or plain):
            self.numeric(items, path, (kind or _plan(first, fresh)).numeric)
            return
        for i, item in enumerate(items):
            self.pointer(item, None if path is None else f"{path}[{i}]")

    def view(self, items: Any, path: str | None, reads: _Reads) -> None:
        """An attribute view (see ``_ATTRIBUTE_VIEWS``): its length and what the attribute
        layers do not hold."""
        props, short = reads
        count = len(items)
        self.put(count, None if path is None else f"{path}#len")
        if short and count <= _ARRAY_THRESHOLD:
            for i, item in enumerate(items):
                self.pointer(item, None if path is None else f"{path}[{i}]")
        elif props and count:
            numeric = _plan(items[0], self.paths is not None).numeric
            kept = tuple(p for p in numeric if p[0] in props)
            self.numeric(items, path, kept)

    def numeric(self, items: Any, path: str | None, plan: Iterable[tuple[str, str, int]]) -> None:
        count = len(items)
        for ident, kind, length in plan:
            buf: np.ndarray = np.empty(count * length, dtype=_DTYPES[kind])
            items.foreach_get(ident, buf)
            self.put(buf.tobytes(), None if path is None else f"{path}[*].{ident}")
