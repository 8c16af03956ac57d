"""Checking a built frame: what it is made of, what differs from its snapshots, what is
foreign to it.

:class:`Built` is the record of one build (made by :mod:`.frame_build`); the functions
here read it and ``bpy.data`` and change neither. :class:`.frame.BuiltFrame` is the one
owner that holds a :class:`Built` and calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import bpy

from ..scenes.frame import FrameSpec
from . import assets
from .rna_snapshot import Snapshot, matches, snapshot
from .rna_snapshot import differences as snapshot_differences

# bpy.data collections an agent can add to; the rest (screens, workspaces, window
# managers, libraries, shape keys) cannot be removed this way or are owned by others.
_ID_COLLECTIONS: tuple[str, ...] = (
    "objects", "meshes", "materials", "images", "node_groups", "texts", "curves",
    "lights", "cameras", "worlds", "textures", "actions", "collections", "grease_pencils",
    "annotations", "armatures", "lattices", "metaballs", "fonts", "particles", "palettes",
    "brushes", "paint_curves", "pointclouds", "volumes", "hair_curves", "speakers",
    "lightprobes", "sounds", "movieclips", "masks", "linestyles", "cache_files", "scenes",
)  # fmt: skip


# Scene properties that do not decide pixels (editing tools, UI state) or that are
# compared elsewhere: objects' membership is walked through ``collection``.
# ``derender`` is the add-on panel's own settings (the script, the seed), the person's to
# change between requests.
_SCENE_UNCHECKED = (
    "tool_settings", "unit_settings", "safe_areas", "cursor", "timeline_markers",
    "transform_orientation_slots", "keying_sets", "keying_sets_all", "objects", "derender",
)  # fmt: skip


@dataclass(frozen=True)
class Built:
    """One build of the frame: what it made and what it looked like."""

    spec: FrameSpec
    scene: bpy.types.Scene
    ids: frozenset[int]  # session_uid of every datablock right after the build
    made: frozenset[int]  # the ones the build created (removed when a new frame is built)
    # per datablock the build made, and the scene; labelled by its name when built
    snapshots: dict[int, Snapshot]
    objects: dict[str, bpy.types.Object]  # "camera", "ground", "light:<name>" (to move)


def datablocks() -> dict[int, bpy.types.ID]:
    """Every datablock of the collections an agent could add to, by ``session_uid``."""
    return {idb.session_uid: idb for name in _ID_COLLECTIONS for idb in getattr(bpy.data, name)}


def frame_snapshot(idb: bpy.types.ID, protected: frozenset[int], name: str) -> Snapshot:
    """The snapshot the frame check compares ``idb`` with (a scene without its UI state)."""
    return snapshot(idb, _skipped(idb), protected, name)


def _skipped(idb: bpy.types.ID) -> tuple[str, ...]:
    return _SCENE_UNCHECKED if isinstance(idb, bpy.types.Scene) else ()


def _render_result(idb: bpy.types.ID) -> bool:
    """True for the images Blender keeps for render results (never the agent's)."""
    return isinstance(idb, bpy.types.Image) and idb.type in {"RENDER_RESULT", "COMPOSITING"}


def owns(built: Built | None, idb: bpy.types.ID) -> bool:
    """True for the frame's own datablocks (camera, lights, ground, world, the scene and
    its UI data), cached assets, and the images Blender keeps for render results."""
    if _render_result(idb):
        return True
    if built is not None and idb.session_uid in built.ids:
        return True
    return assets.is_asset(idb)


def differences(built: Built | None, spec: FrameSpec) -> list[str]:
    """What differs between the built frame and its snapshot, by path; [] if intact."""
    if built is None or not assets.alive(built.scene):
        return ["the frame is not built"]
    scene = cast(bpy.types.Scene, bpy.context.scene)
    if scene.session_uid != built.scene.session_uid:
        return ["the current scene is not the frame's scene"]
    if built.spec != spec:
        return [f"the frame was built for spec {built.spec.hash()}, not {spec.hash()}"]
    present = datablocks()
    out: list[str] = []
    for uid, before in built.snapshots.items():
        idb = built.scene if uid == built.scene.session_uid else present.get(uid)
        if idb is None:
            out.append(f"{before.label} is gone")
        elif not matches(before, idb, _skipped(idb), built.ids):
            out += snapshot_differences(before, frame_snapshot(idb, built.ids, before.label))
    return out


def foreign(built: Built) -> list[bpy.types.ID]:
    """Every removable datablock that is not part of the frame."""
    kept = built.ids | {a.session_uid for a in assets.cached()}
    return [
        idb
        for uid, idb in datablocks().items()
        if uid not in kept and uid != built.scene.session_uid and not _render_result(idb)
    ]
