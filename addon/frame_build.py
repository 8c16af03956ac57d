"""Building the frame: its parts into the current scene, and the snapshots of them.

:func:`build` clears away a previous build and makes a new :class:`.frame_check.Built`
from a :class:`FrameSpec` (the parts come from :mod:`.frame_parts`); :func:`move` poses
its camera and lights for a spec that differs only there. Neither keeps any state: the
one owner of the built frame is :class:`.frame.BuiltFrame`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import bpy

from ..scenes.frame import FrameSpec
from . import assets
from .frame_check import Built, datablocks, foreign, frame_snapshot
from .frame_parts import apply_render_settings, build_parts, look_at, set_light
from .rna_snapshot import label, restore


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


def _remove(previous: Built) -> None:
    """Take away a previous build: what is foreign to it, the changes to its scene (the
    scene outlives frames: the GUI shows it), and its own datablocks (not the scene, not
    cached assets)."""
    if assets.alive(previous.scene):
        bpy.data.batch_remove(foreign(previous))
        uid = previous.scene.session_uid
        restore(previous.scene, previous.snapshots[uid], datablocks())
    present = datablocks()
    bpy.data.batch_remove([present[uid] for uid in previous.made if uid in present])


def build(spec: FrameSpec, previous: Built | None) -> Built:
    """Build the whole frame into the current scene. ``previous`` (the last build, if
    any), everything foreign to it, and any object already in the scene (headless
    ``import bpy`` starts with the startup file's cube, light and camera) are removed
    first, with the data that only they used; other scenes are left alone."""
    if previous is not None:
        _remove(previous)
    scene = cast(bpy.types.Scene, bpy.context.scene)  # always set, headless or in the GUI
    _clear_scene(scene)
    before = set(datablocks())
    objects = build_parts(scene, spec)
    apply_render_settings(scene, spec)
    present = datablocks()
    made = frozenset(present.keys() - before)
    checked = {uid: present[uid] for uid in made}
    checked[scene.session_uid] = scene
    built = Built(spec, scene, frozenset(present), made, {}, objects)
    return snapshotted(built, {uid: label(idb) for uid, idb in checked.items()})


def snapshotted(built: Built, labels: dict[int, str]) -> Built:
    """``built`` with a snapshot of every datablock the build made, and the scene, each
    under its label: what the check compares with (again after :func:`move`, which
    changes the camera and lights on purpose)."""
    cast(bpy.types.ViewLayer, bpy.context.view_layer).update()  # settle derived values
    present = datablocks() | {built.scene.session_uid: built.scene}
    snapshots = {uid: frame_snapshot(present[uid], built.ids, name) for uid, name in labels.items()}
    return replace(built, snapshots=snapshots)


def pose_apart(built: FrameSpec, spec: FrameSpec) -> bool:
    """True if ``spec`` is ``built`` but for the camera's and lights' pose."""
    return replace(built, camera=spec.camera, lights=spec.lights) == spec and [
        (lt.name, lt.kind) for lt in built.lights
    ] == [(lt.name, lt.kind) for lt in spec.lights]


def move(built: Built, spec: FrameSpec) -> Built | None:
    """``built`` with its camera and lights put where ``spec`` has them, when that is all
    that differs (a jittered target's frame: ``FrameSpec.jittered`` / ``posed``); None
    (nothing changed) when anything else differs. Costs two matrix writes per object,
    not a rebuild.

    The snapshots are retaken at the new pose, so only trusted code may have run since
    the frame was last found intact."""
    if built.spec == spec:
        return built
    if not pose_apart(built.spec, spec):
        return None
    camera = built.objects["camera"]
    cam_data = cast(bpy.types.Camera, camera.data)
    cam_data.lens = spec.camera.lens
    cam_data.sensor_width, cam_data.sensor_height = (
        spec.camera.sensor_width,
        spec.camera.sensor_height,
    )
    camera.matrix_world = look_at(spec.camera.location, spec.camera.target)
    for light in spec.lights:
        set_light(built.objects[f"light:{light.name}"], light)
    labels = {uid: snap.label for uid, snap in built.snapshots.items()}
    return snapshotted(replace(built, spec=spec), labels)
