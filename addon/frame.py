"""The locked CLEVR frame in Blender, built, checked and reset.

:func:`build_frame` makes it from a :class:`FrameSpec` (its parts come from
:mod:`.frame_parts`) and snapshots every datablock it made; :func:`frame_differences` checks
it by value against the spec (what an agent may have tampered with); :func:`reset`
returns to exactly the frame between requests: every datablock that did not exist when
the frame was built (and is not a cached asset) is removed, and the frame is rebuilt if
it differs from the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import cast

import bpy

from ..scenes.frame import FrameSpec
from . import assets
from .frame_parts import apply_render_settings, build_parts, look_at, set_light
from .rna_snapshot import Snapshot, differences, label, matches, restore, snapshot

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


@dataclass
class _Frame:
    spec: FrameSpec
    scene: bpy.types.Scene
    ids: frozenset[int]  # session_uid of every datablock right after the build
    made: frozenset[int]  # the ones the build created (removed when a new frame is built)
    # per datablock the build made, and the scene; labelled by its name when built
    snapshots: dict[int, Snapshot]
    objects: dict[str, bpy.types.Object]  # "camera", "ground", "light:<name>" (to move)


_frame: _Frame | None = None


def _clear_scene(scene: bpy.types.Scene) -> None:
    """Remove the scene's objects, child collections and world, and their data once
    nothing else uses it."""
    objects = list(scene.objects)
    own = [c for c in scene.collection.children_recursive if c.users == 1]
    data = [o.data for o in objects if o.data is not None]
    materials = [m for d in data for m in getattr(d, "materials", ()) if m is not None]
    old_world, scene.world = scene.world, None
    bpy.data.batch_remove(objects + own)
    for group in (data, materials, [old_world] if old_world else []):
        unused = {idb.session_uid: idb for idb in group if assets.alive(idb) and idb.users == 0}
        bpy.data.batch_remove(list(unused.values()))


def _remove_frame() -> None:
    """Delete the previous frame's own datablocks (not the scene, not cached assets)."""
    global _frame
    if _frame is None:
        return
    made = _frame.made
    bpy.data.batch_remove([idb for uid, idb in _datablocks().items() if uid in made])
    _frame = None


def build_frame(spec: FrameSpec) -> None:
    """Build the whole frame into the current scene. A previously built frame, everything
    foreign to it, and any object already in the scene (headless ``import bpy`` starts
    with the startup file's cube, light and camera) are removed first, with the data
    that only they used; other scenes are left alone."""
    global _frame
    if _frame is not None and assets.alive(_frame.scene):
        # The scene outlives frames (the GUI shows it): put back what the last build left.
        bpy.data.batch_remove(_foreign())
        uid = _frame.scene.session_uid
        restore(_frame.scene, _frame.snapshots[uid], _datablocks())
    _remove_frame()
    scene = cast(bpy.types.Scene, bpy.context.scene)  # always set, headless or in the GUI
    _clear_scene(scene)
    before = _uids()
    objects = build_parts(scene, spec)
    apply_render_settings(scene, spec)
    ids = frozenset(_uids())
    made = ids - before
    checked = {uid: idb for uid, idb in _datablocks().items() if uid in made}
    checked[scene.session_uid] = scene
    _frame = _Frame(spec, scene, ids, frozenset(made), {}, objects)
    _take_snapshots({uid: label(idb) for uid, idb in checked.items()})


def _take_snapshots(labels: dict[int, str]) -> None:
    """Snapshot every datablock the build made, and the scene, each under its label: what
    the check compares with (again after ``move``, which changes the camera and lights on
    purpose)."""
    assert _frame is not None
    cast(bpy.types.ViewLayer, bpy.context.view_layer).update()  # settle derived values
    present = _datablocks() | {_frame.scene.session_uid: _frame.scene}
    _frame.snapshots = {
        uid: _snapshot(present[uid], _frame.ids, name) for uid, name in labels.items()
    }


def _skipped(idb: bpy.types.ID) -> tuple[str, ...]:
    return _SCENE_UNCHECKED if isinstance(idb, bpy.types.Scene) else ()


def _snapshot(idb: bpy.types.ID, protected: frozenset[int], name: str) -> Snapshot:
    return snapshot(idb, _skipped(idb), protected, name)


def _pose_apart(built: FrameSpec, spec: FrameSpec) -> bool:
    """True if ``spec`` is ``built`` but for the camera's and lights' pose."""
    return replace(built, camera=spec.camera, lights=spec.lights) == spec and [
        (lt.name, lt.kind) for lt in built.lights
    ] == [(lt.name, lt.kind) for lt in spec.lights]


def move(spec: FrameSpec) -> bool:
    """Put the built frame's camera and lights where ``spec`` has them, when that is all
    that differs (a jittered target's frame: ``FrameSpec.jittered`` / ``posed``); True if
    the frame is now ``spec``'s. Costs two matrix writes per object, not a rebuild; False
    (nothing changed) when anything else differs or no frame is built.

    The frame's snapshots are retaken at the new pose, so only trusted code may have run
    since the frame was last found intact (:func:`reset` checks before it moves)."""
    global _frame
    if _frame is None or not assets.alive(_frame.scene):
        return False
    if _frame.spec == spec:
        return True
    if not _pose_apart(_frame.spec, spec):
        return False
    camera = _frame.objects["camera"]
    cam_data = cast(bpy.types.Camera, camera.data)
    cam_data.lens = spec.camera.lens
    cam_data.sensor_width, cam_data.sensor_height = (
        spec.camera.sensor_width,
        spec.camera.sensor_height,
    )
    camera.matrix_world = look_at(spec.camera.location, spec.camera.target)
    for light in spec.lights:
        set_light(_frame.objects[f"light:{light.name}"], light)
    _frame = replace(_frame, spec=spec)
    _take_snapshots({uid: snap.label for uid, snap in _frame.snapshots.items()})
    return True


# -- identity, checking and reset ---------------------------------------------------------
def _datablocks() -> dict[int, bpy.types.ID]:
    """Every datablock of the collections an agent could add to, by ``session_uid``."""
    return {idb.session_uid: idb for name in _ID_COLLECTIONS for idb in getattr(bpy.data, name)}


def _uids() -> set[int]:
    return set(_datablocks())


def is_frame_datablock(idb: bpy.types.ID) -> bool:
    """True for the frame's own datablocks (camera, lights, ground, world, the scene and
    its UI data), cached assets, and the images Blender keeps for render results."""
    if isinstance(idb, bpy.types.Image) and idb.type in {"RENDER_RESULT", "COMPOSITING"}:
        return True
    if _frame is not None and idb.session_uid in _frame.ids:
        return True
    return assets.is_asset(idb)


def frame_differences(spec: FrameSpec) -> list[str]:
    """What differs between the built frame and its snapshot, by path; [] if intact."""
    if _frame is None or not assets.alive(_frame.scene):
        return ["the frame is not built"]
    scene = cast(bpy.types.Scene, bpy.context.scene)
    if scene.session_uid != _frame.scene.session_uid:
        return ["the current scene is not the frame's scene"]
    if _frame.spec != spec:
        return [f"the frame was built for spec {_frame.spec.hash()}, not {spec.hash()}"]
    present = _datablocks()
    out: list[str] = []
    for uid, before in _frame.snapshots.items():
        idb = _frame.scene if uid == _frame.scene.session_uid else present.get(uid)
        if idb is None:
            out.append(f"{before.label} is gone")
        elif not matches(before, idb, _skipped(idb), _frame.ids):
            out += differences(before, _snapshot(idb, _frame.ids, before.label))
    return out


def _foreign() -> list[bpy.types.ID]:
    """Every removable datablock that is not part of the frame."""
    assert _frame is not None
    kept = _frame.ids | {a.session_uid for a in assets.cached()}
    out = []
    for uid, idb in _datablocks().items():
        if uid in kept or uid == _frame.scene.session_uid:
            continue
        if isinstance(idb, bpy.types.Image) and idb.type in {"RENDER_RESULT", "COMPOSITING"}:
            continue
        out.append(idb)
    return out


def adopt_user_data() -> int:
    """Count every foreign datablock as part of the frame from now on, except objects in
    the frame's own scene (the agent's stage); returns how many were adopted.

    Inside the Blender GUI the person's own work (objects in their scenes, texts, images)
    lives beside the frame; the GUI session calls this before each request, so a reset
    removes only what that request created. Headless workers never call it."""
    global _frame
    if _frame is None or not assets.alive(_frame.scene):
        return 0
    staged = {o.session_uid for o in _frame.scene.objects}
    keep = [i for i in _foreign() if i.session_uid not in staged]
    if keep:
        _frame = replace(_frame, ids=_frame.ids | {i.session_uid for i in keep})
    return len(keep)


class FrameBroken(RuntimeError):
    """The frame differs from its snapshot even after a rebuild; names what differs.

    A worker process that raises it is replaced: its Blender state is not trusted."""


def reset(spec: FrameSpec, verified: bool = False) -> None:
    """Return to exactly the frame of ``spec``: foreign datablocks and edited assets go,
    and the frame is rebuilt from scratch if anything else differs from its snapshot (a
    spec that differs only in the camera's and lights' pose just moves them).

    ``verified``: the caller compared the frame and the assets with their snapshots
    (:func:`frame_differences`, :func:`assets.drop_modified`) after the last untrusted
    code ran and found them intact, and only trusted code ran since (a render, a
    read-back), so comparing again is skipped: the reset removes what is foreign.

    The first call builds the frame (see :func:`build_frame`). Raises
    :class:`FrameBroken` if even the rebuilt frame differs."""
    if _frame is None or not assets.alive(_frame.scene) or not _pose_apart(_frame.spec, spec):
        build_frame(spec)
        return
    if bpy.context.window is not None and bpy.context.scene != _frame.scene:
        bpy.context.window.scene = _frame.scene
    foreign = _foreign()
    if foreign:
        bpy.data.batch_remove(foreign)
    assets.trim()
    if not verified:
        assets.drop_modified()
        # Checked at the pose the script saw, before a move retakes the snapshots.
        if frame_differences(_frame.spec):
            build_frame(spec)
            still = frame_differences(spec)
            if still:
                raise FrameBroken("; ".join(still))
            return
    move(spec)
