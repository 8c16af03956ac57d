"""Generic snapshots of Blender datablocks: every RNA property, walked, in a flat list.

The frame check and the asset check compare a snapshot taken when a datablock was built
with one taken after an agent's script. Nothing here names a property it checks: the walk
follows each datablock's RNA (every writable value, every nested struct, every collection),
so a property nobody thought of (a light's ``exposure``, an object's ``display_type``, a
viewport ``metallic``) is covered like any other.

The walk itself, per struct, is :mod:`.rna_walk`'s.

A check walks without paths and compares the value lists (:meth:`Snapshot.matches`);
paths are built only for the reference snapshot and to say what differs
(:func:`differences`), e.g. ``Object('Ground').modifiers[0].width``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import bpy

from .rna_walk import Walk


class Snapshot:
    """The values of one walk of a datablock, in walk order, and where they came from
    (``paths``: built for reference snapshots and for messages only)."""

    __slots__ = ("label", "paths", "values")

    def __init__(self, label: str, values: list[Any], paths: list[Any] | None) -> None:
        self.label = label
        self.values = values
        self.paths = paths

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Snapshot) and self.values == other.values

    __hash__ = None  # type: ignore[assignment]

    def as_dict(self) -> dict[str, Any]:
        """Path -> value, e.g. ``{"Object('Ground').modifiers[0].width": 0.1, ...}``."""
        if self.paths is None:
            raise ValueError(f"the snapshot of {self.label} was taken without paths")
        out: dict[str, Any] = {}
        for path, value in zip(self.paths, self.values, strict=True):
            if isinstance(path, tuple):
                prefix, names = path
                out.update((f"{prefix}.{n}", v) for n, v in zip(names, value, strict=True))
            else:
                out[path] = value
        return out


def label(idb: bpy.types.ID) -> str:
    """How paths name a datablock: ``Object('Ground')``."""
    return f"{type(idb).__name__}({idb.name!r})"


def snapshot(
    idb: bpy.types.ID,
    skip: Iterable[str] = (),
    protected: frozenset[int] | None = None,
    name: str | None = None,
    paths: bool = True,
) -> Snapshot:
    """Every property of ``idb`` (and of its embedded data), e.g. the path
    ``Object('Ground').modifiers[0].width``. ``skip``: top-level properties left out.
    ``protected``: the datablocks that matter; others (the agent's) are recorded as
    "foreign" where pointed to and left out of collections of datablocks. ``name``: the
    label of the paths (default :func:`label`; pass the first snapshot's label to compare
    a renamed datablock or one whose type changed, path by path). ``paths=False``: for a
    comparison only (see :meth:`Snapshot.matches`). A reference snapshot (``paths=True``)
    also plans again each type it meets whose registered properties changed
    (:class:`.rna_walk.Walk`)."""
    walk = Walk(protected, paths)
    label_ = name or label(idb)
    walk.struct(idb, label_ if paths else None, frozenset(skip))
    walk.put(tuple(idb.keys()), f"{label_}#custom")  # ID properties (agents cannot set them)
    return Snapshot(label_, walk.out, walk.paths)


def matches(
    reference: Snapshot,
    idb: bpy.types.ID,
    skip: Iterable[str] = (),
    protected: frozenset[int] | None = None,
) -> bool:
    """True if ``idb`` still has exactly the values of ``reference`` (no paths built)."""
    return snapshot(idb, skip, protected, reference.label, paths=False) == reference


def restore(idb: bpy.types.ID, saved: Snapshot, ids: dict[int, bpy.types.ID]) -> None:
    """Set every value and datablock pointer of ``idb`` that differs from ``saved`` back
    to it; ``ids`` maps session_uid to datablock.

    For a datablock that cannot be recreated (the frame's scene, which the GUI shows):
    collections' lengths cannot be restored this way, the caller removes what was added.
    A value Blender refuses is left as it is; the next comparison reports it."""
    name = saved.label
    current = snapshot(idb, (), None, name).as_dict()
    for path, value in saved.as_dict().items():
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
    """'path changed from A to B' for up to ``most`` differing paths (in path order);
    both snapshots need paths."""
    if before == after:
        return []
    a_paths, b_paths = before.as_dict(), after.as_dict()
    out = []
    for path in sorted(a_paths.keys() | b_paths.keys()):
        a, b = a_paths.get(path, "<absent>"), b_paths.get(path, "<absent>")
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
