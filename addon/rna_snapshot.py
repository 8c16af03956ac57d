"""Generic snapshots of Blender datablocks: every RNA property, walked, as a flat mapping.

The frame check and the asset check compare a snapshot taken when a datablock was built
with one taken after an agent's script. Nothing here names a property it checks: the walk
follows each datablock's RNA (every writable value, every nested struct, every collection),
so a property nobody thought of (a light's ``exposure``, an object's ``display_type``, a
viewport ``metallic``) is covered like any other.

The walk, per struct, in RNA order:

- writable booleans, ints, floats, strings and enums (read-only ones are derived);
- a pointer to another datablock is recorded by its ``session_uid`` (unique for the whole
  Blender session, never reused, unlike ``as_pointer()``), and not followed: that
  datablock has a snapshot of its own; embedded datablocks (a material's node tree) are
  walked as part of their owner;
- a pointer to a struct is walked, once: a struct reached again (a link's ``from_socket``)
  is recorded by the path where the walk first met it, so rewiring shows as a change;
- a collection is walked item by item; long collections of plain items (mesh vertices,
  attribute data) are read with ``foreach_get`` per numeric property instead.

``differences`` lists what changed, by path, for messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import bpy
import numpy as np

Snapshot = dict[str, Any]

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
# Collections longer than this are compared per numeric property with foreach_get.
_ARRAY_THRESHOLD = 32
_VALUE, _ARRAY, _POINTER, _COLLECTION = range(4)
_NUMERIC_TYPES = frozenset({"BOOLEAN", "INT", "FLOAT"})
_DTYPES = {"BOOLEAN": np.bool_, "INT": np.int32, "FLOAT": np.float32}

# Keyed by RNA type and property count: add-ons register properties at runtime (the
# panel's ``Scene.derender``), and a plan must follow them.
_plans: dict[tuple[str, int], tuple[tuple[str, int], ...]] = {}
_numeric: dict[str, tuple[tuple[str, str, int], ...]] = {}


def _plan(struct: Any) -> tuple[tuple[str, int], ...]:
    """(identifier, kind) of each property the walk reads, per RNA type, cached."""
    rna = struct.bl_rna
    key = (rna.identifier, len(rna.properties))
    plan = _plans.get(key)
    if plan is None:
        entries = []
        for prop in rna.properties:
            ident = prop.identifier
            if ident in _SKIPPED or ident in _UNREADABLE or (rna.identifier, ident) in _SKIPPED_IN:
                continue
            if prop.type == "POINTER":
                entries.append((ident, _POINTER))
            elif prop.type == "COLLECTION":
                entries.append((ident, _COLLECTION))
            elif not prop.is_readonly:
                arrayed = prop.type in _NUMERIC_TYPES and getattr(prop, "is_array", False)
                entries.append((ident, _ARRAY if arrayed else _VALUE))
        plan = _plans[key] = tuple(entries)
    return plan


def _numeric_plan(rna: Any) -> tuple[tuple[str, str, int], ...]:
    """(identifier, type, length) of each writable numeric property of an item type."""
    plan = _numeric.get(rna.identifier)
    if plan is None:
        plan = _numeric[rna.identifier] = tuple(
            (p.identifier, p.type, _length(p))
            for p in rna.properties
            if p.type in _NUMERIC_TYPES
            and not p.is_readonly
            and p.identifier not in _SKIPPED
            and (rna.identifier, p.identifier) not in _DYNAMIC_ARRAYS
        )
    return plan


def _key(struct: Any) -> tuple[int, str]:
    return (struct.as_pointer(), struct.bl_rna.identifier)


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


class _Walk:
    def __init__(self, protected: frozenset[int] | None) -> None:
        self.out: Snapshot = {}
        # (address, RNA type) -> path: a nested struct may share its owner's address (a
        # world's mist settings are fields of the world), so the type is part of the key.
        self.seen: dict[tuple[int, str], str] = {}
        self.protected = protected

    def struct(self, struct: Any, path: str) -> None:
        self.seen[_key(struct)] = path
        for ident, kind in _plan(struct):
            here = f"{path}.{ident}"
            try:
                value = getattr(struct, ident)
            except (AttributeError, RuntimeError, TypeError) as exc:
                self.out[here] = f"unreadable: {type(exc).__name__}"
                continue
            if kind == _VALUE:
                self.out[here] = _plain(value)
            elif kind == _ARRAY:
                self.out[here] = _plain(value)
            elif kind == _POINTER:
                self.pointer(value, here)
            else:
                self.collection(value, here)

    def pointer(self, value: Any, path: str) -> None:
        if value is None:
            self.out[path] = None
        elif isinstance(value, bpy.types.ID) and not value.is_embedded_data:
            self.out[path] = self.identity(value)
        elif not isinstance(value, bpy.types.bpy_struct):
            self.out[path] = _plain(value)
        elif _key(value) in self.seen:
            self.out[path] = ("ref", self.seen[_key(value)])
        else:
            self.struct(value, path)

    def identity(self, idb: bpy.types.ID) -> tuple[str, str, int | None]:
        uid = idb.session_uid
        if self.protected is not None and uid not in self.protected:
            return ("id", "foreign", None)
        return ("id", type(idb).__name__, uid)

    def collection(self, items: Any, path: str) -> None:
        count = len(items)
        if count and isinstance(items[0], bpy.types.ID) and not items[0].is_embedded_data:
            # A collection of datablocks (a collection's objects): which protected ones it
            # holds, in order; the agent's own are not the frame's business.
            ids = [self.identity(idb) for idb in items]
            self.out[path] = tuple(i for i in ids if i[1] != "foreign")
            return
        self.out[f"{path}#len"] = count
        if count > _ARRAY_THRESHOLD and hasattr(items, "foreach_get"):
            rna = items[0].bl_rna
            for ident, kind, length in _numeric_plan(rna):
                buf = np.empty(count * length, dtype=_DTYPES[kind])
                items.foreach_get(ident, buf)
                self.out[f"{path}[*].{ident}"] = buf.tobytes()
            return
        for i, item in enumerate(items):
            self.pointer(item, f"{path}[{i}]")


def label(idb: bpy.types.ID) -> str:
    """How paths name a datablock: ``Object('Ground')``."""
    return f"{type(idb).__name__}({idb.name!r})"


def snapshot(
    idb: bpy.types.ID,
    skip: Iterable[str] = (),
    protected: frozenset[int] | None = None,
    name: str | None = None,
) -> Snapshot:
    """Every property of ``idb`` (and of its embedded data) by path, e.g.
    ``Object('Ground').modifiers[0].width``. ``skip``: top-level properties left out.
    ``protected``: the datablocks that matter; others (the agent's) are recorded as
    "foreign" where pointed to and left out of collections of datablocks. ``name``: the
    label of the paths (default :func:`label`; pass the first snapshot's label to compare
    a renamed datablock or one whose type changed, path by path)."""
    walk = _Walk(protected)
    label_ = name or label(idb)
    walk.seen[_key(idb)] = label_
    skipped = frozenset(skip)
    for ident, kind in _plan(idb):
        if ident in skipped:
            continue
        value = getattr(idb, ident)
        here = f"{label_}.{ident}"
        if kind in (_VALUE, _ARRAY):
            walk.out[here] = _plain(value)
        elif kind == _POINTER:
            walk.pointer(value, here)
        else:
            walk.collection(value, here)
    walk.out[f"{label_}#custom"] = tuple(idb.keys())  # ID properties (agents cannot set them)
    return walk.out


def restore(idb: bpy.types.ID, saved: Snapshot, name: str, ids: dict[int, bpy.types.ID]) -> None:
    """Set every value and datablock pointer of ``idb`` that differs from ``saved`` (a
    snapshot labelled ``name``) back to it; ``ids`` maps session_uid to datablock.

    For a datablock that cannot be recreated (the frame's scene, which the GUI shows):
    collections' lengths cannot be restored this way, the caller removes what was added.
    A value Blender refuses is left as it is; the next comparison reports it."""
    current = snapshot(idb, (), None, name)
    for path, value in saved.items():
        if "#" in path or "[*]" in path or current.get(path, value) == value:
            continue
        owner, attr = _resolve(idb, path[len(name) + 1 :])
        if isinstance(value, tuple) and value[:1] == ("id",):
            value = ids.get(value[2]) if value[2] is not None else None
            if value is None:
                continue
        elif isinstance(value, frozenset):
            value = set(value)
        try:
            setattr(owner, attr, value)
        except (AttributeError, TypeError, ValueError, RuntimeError):
            continue


def _resolve(root: Any, path: str) -> tuple[Any, str]:
    """(owner, attribute) of ``render.views[0].use`` below ``root``."""
    owner = root
    parts = path.split(".")
    for part in parts[:-1]:
        ident, _, index = part.partition("[")
        owner = getattr(owner, ident)
        if index:
            owner = owner[int(index.rstrip("]"))]
    return owner, parts[-1]


def differences(before: Snapshot, after: Snapshot, most: int = 12) -> list[str]:
    """'path changed from A to B' for up to ``most`` differing paths (in path order)."""
    if before == after:
        return []
    out = []
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path, "<absent>"), after.get(path, "<absent>")
        if a != b:
            out.append(f"{path} changed from {_short(a)} to {_short(b)}")
            if len(out) == most:
                out.append("...")
                break
    return out


def _short(value: Any) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
