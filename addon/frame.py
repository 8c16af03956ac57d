"""The locked CLEVR frame in Blender: camera, lights, ground, world and render settings.

:func:`build_frame` makes it from a :class:`FrameSpec`; :func:`frame_differences` checks
it by value against the spec (what an agent may have tampered with); :func:`reset`
returns to exactly the frame between requests: every datablock that did not exist when
the frame was built (and is not a cached asset) is removed, and the frame is rebuilt if
it differs from the spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..scenes import backdrop
from ..scenes.frame import FrameSpec, Light
from . import assets, compat, settings

GROUND_ROUGHNESS = 0.5  # the default Principled BSDF's (see _set_ground_material)
CLIP_START = 0.1
CLIP_END = 100.0  # base_scene.blend's camera
_VISIBILITY_FLAGS = ("visible_camera", "visible_diffuse", "visible_glossy", "visible_shadow")

# bpy.data collections an agent can add to; the rest (screens, workspaces, window
# managers, libraries, shape keys) cannot be removed this way or are owned by others.
_ID_COLLECTIONS: tuple[str, ...] = (
    "objects", "meshes", "materials", "images", "node_groups", "texts", "curves",
    "lights", "cameras", "worlds", "textures", "actions", "collections", "grease_pencils",
    "annotations", "armatures", "lattices", "metaballs", "fonts", "particles", "palettes",
    "brushes", "paint_curves", "pointclouds", "volumes", "hair_curves", "speakers",
    "lightprobes", "sounds", "movieclips", "masks", "linestyles", "cache_files", "scenes",
)  # fmt: skip


@dataclass
class _Frame:
    spec: FrameSpec
    scene: bpy.types.Scene
    objects: dict[str, bpy.types.Object]  # "camera", "ground", "light:<name>"
    world: bpy.types.World
    ground_material: bpy.types.Material
    ids: frozenset[tuple[int, str, str]]  # _key() of every datablock right after the build
    render: dict[str, Any]  # every render property as built (settings.snapshot)
    names: dict[str, str]  # key of `objects` -> the name it was built with

    def render_settings(self, spec: FrameSpec) -> dict[str, Any]:
        """The whole expected render state: the snapshot, with ``spec``'s values on top."""
        return self.render | settings.spec_settings(spec)


_frame: _Frame | None = None


def look_at(location: Sequence[float], target: Sequence[float]) -> Matrix:
    """World matrix of a camera/light at ``location`` whose -Z points at ``target``, +Y up.

    Same basis as ``FrameSpec.camera.basis()`` (right = fwd x Z), so ``FrameSpec.project``
    predicts where Blender draws a point.
    """
    loc = Vector(location)
    quat = (Vector(target) - loc).to_track_quat("-Z", "Y")
    return Matrix.Translation(loc) @ quat.to_matrix().to_4x4()


# -- building -----------------------------------------------------------------------------
def _link(scene: bpy.types.Scene, obj: bpy.types.Object) -> bpy.types.Object:
    scene.collection.objects.link(obj)
    return obj


_backdrop_coords: np.ndarray | None = None


def ground_matrix() -> Matrix:
    """The backdrop object's world matrix (base_scene.blend's ``Ground``)."""
    return Matrix.Translation(backdrop.LOCATION) @ Matrix.Rotation(backdrop.ROTATION_Z, 4, "Z")


def _backdrop_mesh() -> bpy.types.Mesh:
    """CLEVR's backdrop: the profile extruded, its Subdivision modifier applied."""
    global _backdrop_coords
    base = bpy.data.meshes.new("Ground_base")
    base.from_pydata(backdrop.vertices(), [], backdrop.faces())
    mesh = assets.bake(base, [("SUBSURF", backdrop.SUBSURF)], "Ground")
    mesh.shade_flat()
    co = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    _backdrop_coords = co
    return mesh


def _ground_coords() -> np.ndarray:
    """The built backdrop's vertex coordinates (the same on every build)."""
    assert _backdrop_coords is not None, "the frame is not built"
    return _backdrop_coords


def _add_light(scene: bpy.types.Scene, light: Light) -> bpy.types.Object:
    kind = cast("Literal['AREA', 'SUN']", light.kind)  # Light validates it
    data = bpy.data.lights.new(light.name, type=kind)
    obj = _link(scene, bpy.data.objects.new(light.name, data))
    _set_light(obj, light)
    return obj


# EEVEE cuts a light off at a distance it derives from the light's power; for CLEVR's
# lamps that is closer than the floor (the back lamp lit nothing), so it is set to reach
# past the backdrop. Cycles has no cut-off.
LIGHT_REACH = 100.0


def _set_light(obj: bpy.types.Object, light: Light) -> None:
    data = cast("bpy.types.AreaLight | bpy.types.SunLight", obj.data)  # by light.kind
    data.energy = light.strength
    data.color = light.color
    data.use_shadow = True
    data.use_custom_distance = True
    data.cutoff_distance = LIGHT_REACH
    if light.kind == "AREA":
        area = cast(bpy.types.AreaLight, data)
        area.shape = "SQUARE"
        area.size = light.size
    else:  # a sun's "size" is its angular diameter, radians
        cast(bpy.types.SunLight, data).angle = light.size
    obj.matrix_world = look_at(light.location, light.target)


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
        unused = {idb.as_pointer(): idb for idb in group if assets.alive(idb) and idb.users == 0}
        bpy.data.batch_remove(list(unused.values()))


def _remove_frame() -> None:
    """Delete the previous frame's own datablocks (not the scene, not cached assets)."""
    global _frame
    if _frame is None:
        return
    old = [*_frame.objects.values(), _frame.world, _frame.ground_material]
    data = [o.data for o in _frame.objects.values() if assets.alive(o) and o.data is not None]
    bpy.data.batch_remove([idb for idb in (*old, *data) if assets.alive(idb)])
    _frame = None


def build_frame(spec: FrameSpec) -> None:
    """Build the whole frame into the current scene. A previously built frame, everything
    foreign to it, and any object already in the scene (headless ``import bpy`` starts
    with the startup file's cube, light and camera) are removed first, with the data
    that only they used; other scenes are left alone."""
    global _frame
    if _frame is not None and assets.alive(_frame.scene):
        bpy.data.batch_remove(_foreign())
        settings.apply(_frame.scene, _frame.render)  # undo tampering before the new snapshot
    _remove_frame()
    scene = cast(bpy.types.Scene, bpy.context.scene)  # always set, headless or in the GUI
    _clear_scene(scene)

    cam_data = bpy.data.cameras.new("Camera")
    cam_data.type = "PERSP"
    cam_data.lens = spec.camera.lens
    cam_data.sensor_fit = "AUTO"
    cam_data.sensor_width = spec.camera.sensor_width
    cam_data.sensor_height = spec.camera.sensor_height
    cam_data.clip_start, cam_data.clip_end = CLIP_START, CLIP_END
    camera = _link(scene, bpy.data.objects.new("Camera", cam_data))
    camera.matrix_world = look_at(spec.camera.location, spec.camera.target)
    scene.camera = camera

    objects = {"camera": camera}
    for light in spec.lights:
        objects[f"light:{light.name}"] = _add_light(scene, light)

    mesh = _backdrop_mesh()
    ground_mat = bpy.data.materials.new("Ground")
    _set_ground_material(ground_mat, spec)
    mesh.materials.append(ground_mat)
    objects["ground"] = _link(scene, bpy.data.objects.new("Ground", mesh))
    objects["ground"].matrix_world = ground_matrix()

    world = bpy.data.worlds.new("World")
    world.color = spec.world_color
    background = _world_background(world)
    color = cast(bpy.types.NodeSocketColor, background.inputs["Color"])
    color.default_value = (*spec.world_color, 1.0)
    strength = cast(bpy.types.NodeSocketFloat, background.inputs["Strength"])
    strength.default_value = spec.rendered_world_strength()
    scene.world = world

    apply_render_settings(scene, spec)
    ids = frozenset(_key(idb) for name in _ID_COLLECTIONS for idb in getattr(bpy.data, name))
    names = {key: obj.name for key, obj in objects.items()} | {"scene": scene.name}
    _frame = _Frame(spec, scene, objects, world, ground_mat, ids, settings.snapshot(scene), names)


def move(spec: FrameSpec) -> bool:
    """Put the built frame's camera and lights where ``spec`` has them, when that is all
    that differs (a jittered target's frame: ``FrameSpec.jittered`` / ``posed``); True if
    the frame is now ``spec``'s. Costs two matrix writes per object, not a rebuild; False
    (nothing changed) when anything else differs or no frame is built."""
    global _frame
    if _frame is None or not assets.alive(_frame.scene):
        return False
    if _frame.spec == spec:
        return True
    if replace(_frame.spec, camera=spec.camera, lights=spec.lights) != spec or [
        (lt.name, lt.kind) for lt in _frame.spec.lights
    ] != [(lt.name, lt.kind) for lt in spec.lights]:
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
        _set_light(_frame.objects[f"light:{light.name}"], light)
    _frame = replace(_frame, spec=spec)
    return True


def apply_render_settings(scene: bpy.types.Scene, spec: FrameSpec) -> None:
    """Set what the spec fixes in the render; the scene keeps one view layer."""
    for layer in list(scene.view_layers)[1:]:
        scene.view_layers.remove(layer)
    settings.apply(scene, settings.spec_settings(spec))


def _set_ground_material(mat: bpy.types.Material, spec: FrameSpec) -> None:
    """What CLEVR's ground (no material) renders with, made explicit so that EEVEE and
    Workbench show it too: Cycles 5.0's default surface, which renders exactly as a default
    Principled BSDF (base 0.8, roughness 0.5, IOR 1.5, specular 0.5; measured against the
    reference renderer, MAE 0.0). Blender 2.78's default surface was a Lambert 0.8."""
    rgba = (*spec.ground_color, 1.0)
    mat.diffuse_color = rgba
    mat.metallic = 0.0
    mat.roughness = GROUND_ROUGHNESS
    bsdf = compat.principled_bsdf(mat)
    cast(bpy.types.NodeSocketColor, bsdf.inputs["Base Color"]).default_value = rgba
    cast(bpy.types.NodeSocketFloat, bsdf.inputs["Metallic"]).default_value = 0.0
    cast(bpy.types.NodeSocketFloat, bsdf.inputs["Roughness"]).default_value = GROUND_ROUGHNESS


def _world_background(world: bpy.types.World) -> bpy.types.ShaderNode:
    for node in compat.ensure_node_tree(world).nodes:
        if node.type == "BACKGROUND":
            return cast(bpy.types.ShaderNode, node)
    raise RuntimeError(f"world {world.name!r} has no Background node")


# -- checking -----------------------------------------------------------------------------
def _compare(out: list[str], what: str, actual: Any, expected: Any) -> None:
    if not settings.values_close(actual, expected):
        out.append(f"{what} is {_fmt(actual)}, expected {_fmt(expected)}")


def _fmt(value: Any) -> str:
    if isinstance(value, str | bool | int | float):
        return repr(value)
    try:
        return repr(tuple(round(float(v), 6) for v in np.asarray(value, float).ravel()))
    except (TypeError, ValueError):
        return repr(value)


def _check_object(out: list[str], key: str, obj: bpy.types.Object, expected: Matrix) -> None:
    assert _frame is not None
    scene_obj = _frame.scene.objects.get(obj.name)
    if scene_obj is None or scene_obj.as_pointer() != obj.as_pointer():
        out.append(f"{key} is not in the scene")
    if obj.name != _frame.names[key]:  # pixels alike, but the next script would see it
        out.append(f"{key} is named {obj.name!r}, expected {_frame.names[key]!r}")
    if obj.parent is not None or len(obj.constraints) or obj.animation_data is not None:
        out.append(f"{key} has a parent, constraint or animation")
    _compare(
        out,
        f"{key} matrix",
        [list(r) for r in obj.matrix_basis],  # type: ignore[attr-defined]  # Matrix iterates rows
        [list(r) for r in expected],  # type: ignore[attr-defined]
    )
    for flag in _VISIBILITY_FLAGS:
        built = obj.type != "LIGHT" or flag != "visible_camera"  # lights: camera-invisible
        _compare(out, f"{key} {flag}", getattr(obj, flag), built)
    _compare(out, f"{key} hide_render", obj.hide_render, False)
    if len(obj.modifiers):
        out.append(f"{key} has modifiers")


def _check_lights(out: list[str], spec: FrameSpec) -> None:
    assert _frame is not None
    for light in spec.lights:
        key = f"light:{light.name}"
        obj = _frame.objects.get(key)
        if obj is None or not assets.alive(obj) or obj.type != "LIGHT":
            out.append(f"{key} is missing")
            continue
        _check_object(out, key, obj, look_at(light.location, light.target))
        data = cast("bpy.types.AreaLight | bpy.types.SunLight", obj.data)  # obj.type is LIGHT
        if data.type != light.kind:  # the other checks would read attributes it lacks
            out.append(f"{key} type is {data.type!r}, expected {light.kind!r}")
            continue
        _compare(out, f"{key} energy", data.energy, light.strength)
        _compare(out, f"{key} color", data.color, light.color)
        _compare(out, f"{key} use_shadow", data.use_shadow, True)
        if light.kind == "AREA":
            area = cast(bpy.types.AreaLight, data)
            _compare(out, f"{key} shape", area.shape, "SQUARE")
            _compare(out, f"{key} size", area.size, light.size)
        else:
            _compare(out, f"{key} angle", cast(bpy.types.SunLight, data).angle, light.size)
        _compare(out, f"{key} node tree", data.node_tree is not None, False)


def _check_camera(out: list[str], spec: FrameSpec) -> None:
    assert _frame is not None
    cam = _frame.objects["camera"]
    if not assets.alive(cam) or cam.type != "CAMERA":
        out.append("camera is missing")
        return
    if _frame.scene.camera is None or _frame.scene.camera.as_pointer() != cam.as_pointer():
        out.append("scene.camera is not the frame camera")
    _check_object(out, "camera", cam, look_at(spec.camera.location, spec.camera.target))
    data = cast(bpy.types.Camera, cam.data)  # cam.type is CAMERA
    for attr, value in (
        ("type", "PERSP"), ("lens", spec.camera.lens), ("lens_unit", "MILLIMETERS"),
        ("sensor_fit", "AUTO"), ("sensor_width", spec.camera.sensor_width),
        ("sensor_height", spec.camera.sensor_height), ("shift_x", 0.0), ("shift_y", 0.0),
        ("clip_start", CLIP_START), ("clip_end", CLIP_END), ("dof.use_dof", False),
    ):  # fmt: skip
        owner, name = (data.dof, "use_dof") if attr == "dof.use_dof" else (data, attr)
        _compare(out, f"camera {attr}", getattr(owner, name), value)


def _check_ground(out: list[str], spec: FrameSpec) -> None:
    assert _frame is not None
    ground, mat = _frame.objects["ground"], _frame.ground_material
    if not assets.alive(ground) or ground.type != "MESH" or not assets.alive(mat):
        out.append("ground is missing")
        return
    _check_object(out, "ground", ground, ground_matrix())
    mesh = cast(bpy.types.Mesh, ground.data)  # ground.type is MESH
    co = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    _compare(out, "ground vertices", co, _ground_coords())
    slots = [s.material.name if s.material else None for s in ground.material_slots]
    if (
        slots != [mat.name]
        or cast(bpy.types.Material, ground.material_slots[0].material).as_pointer()
        != mat.as_pointer()
    ):
        out.append(f"ground materials are {slots}, expected [{mat.name!r}]")
    rgba = (*spec.ground_color, 1.0)
    _compare(out, "ground diffuse_color", mat.diffuse_color, rgba)
    try:
        bsdf = compat.principled_bsdf(mat)
        base = cast(bpy.types.NodeSocketColor, bsdf.inputs["Base Color"])
        roughness = cast(bpy.types.NodeSocketFloat, bsdf.inputs["Roughness"])
        metallic = cast(bpy.types.NodeSocketFloat, bsdf.inputs["Metallic"])
        _compare(out, "ground base color", base.default_value, rgba)
        _compare(out, "ground roughness", roughness.default_value, GROUND_ROUGHNESS)
        _compare(out, "ground metallic", metallic.default_value, 0.0)
        tree = cast(bpy.types.ShaderNodeTree, mat.node_tree)  # principled_bsdf found it
        _compare(out, "ground shader nodes", len(tree.nodes), 2)
        _compare(out, "ground shader links", len(tree.links), 1)
    except RuntimeError as exc:
        out.append(str(exc))


def _check_world(out: list[str], spec: FrameSpec) -> None:
    assert _frame is not None
    world = _frame.world
    scene_world = _frame.scene.world
    if not (assets.alive(world) and scene_world and scene_world.as_pointer() == world.as_pointer()):
        out.append("scene.world is not the frame world")
        return
    _compare(out, "world color", world.color, spec.world_color)
    try:
        bg = _world_background(world)
    except RuntimeError as exc:
        out.append(str(exc))
        return
    color = cast(bpy.types.NodeSocketColor, bg.inputs["Color"])
    strength = cast(bpy.types.NodeSocketFloat, bg.inputs["Strength"])
    _compare(out, "world background color", color.default_value, (*spec.world_color, 1.0))
    _compare(out, "world strength", strength.default_value, spec.rendered_world_strength())
    tree = cast(bpy.types.ShaderNodeTree, world.node_tree)  # _world_background found it
    _compare(out, "world shader nodes", len(tree.nodes), 2)
    _compare(out, "world shader links", len(tree.links), 1)


def _check_render(out: list[str], spec: FrameSpec) -> None:
    assert _frame is not None
    scene = _frame.scene
    if len(scene.view_layers) != 1:
        out.append(f"scene has {len(scene.view_layers)} view layers, expected 1")
    out.extend(settings.differences(scene, _frame.render_settings(spec)))


def frame_differences(spec: FrameSpec) -> list[str]:
    """What differs, by value, between the built frame and ``spec``; [] if intact."""
    if _frame is None or not assets.alive(_frame.scene):
        return ["the frame is not built"]
    if cast(bpy.types.Scene, bpy.context.scene).as_pointer() != _frame.scene.as_pointer():
        return ["the current scene is not the frame's scene"]
    out: list[str] = []
    if _frame.spec != spec:
        out.append(f"the frame was built for spec {_frame.spec.hash()}, not {spec.hash()}")
    _check_camera(out, spec)
    _check_lights(out, spec)
    _check_ground(out, spec)
    _check_world(out, spec)
    _check_render(out, spec)
    return out


# -- identity and reset -------------------------------------------------------------------
def _key(idb: bpy.types.ID) -> tuple[int, str, str]:
    """Identity of a datablock. The pointer alone is not enough: one the agent frees can
    be reused by malloc for the agent's next datablock; type and name must match too."""
    return (idb.as_pointer(), type(idb).__name__, idb.name)


def is_frame_datablock(idb: bpy.types.ID) -> bool:
    """True for the frame's own datablocks (camera, lights, ground, world, the scene and
    its UI data), cached assets, and the images Blender keeps for render results."""
    if isinstance(idb, bpy.types.Image) and idb.type in {"RENDER_RESULT", "COMPOSITING"}:
        return True
    if _frame is not None and _key(idb) in _frame.ids:
        return True
    return assets.is_asset(idb)


def _foreign() -> list[bpy.types.ID]:
    """Every removable datablock that is not part of the frame."""
    assert _frame is not None
    assets_kept = {a.as_pointer() for a in assets.cached()}
    out = []
    for name in _ID_COLLECTIONS:
        for idb in getattr(bpy.data, name):
            if _key(idb) in _frame.ids or idb.as_pointer() in assets_kept:
                continue
            if idb == _frame.scene:  # renamed by the agent: restored by reset, never removed
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
    staged = {o.as_pointer() for o in _frame.scene.objects}
    keep = [i for i in _foreign() if i.as_pointer() not in staged]
    if keep:
        _frame = replace(_frame, ids=_frame.ids | {_key(i) for i in keep})
    return len(keep)


def reset(spec: FrameSpec) -> None:
    """Return to exactly the frame of ``spec``: foreign datablocks and edited assets go,
    render settings are re-applied, and the frame is rebuilt if anything else differs
    (a spec that differs only in the camera's and lights' pose just moves them).

    The first call builds the frame (see :func:`build_frame`)."""
    if not move(spec):  # a jittered target's frame moves the camera and lights only
        build_frame(spec)
        return
    assert _frame is not None  # move() found it built
    if bpy.context.window is not None and bpy.context.scene != _frame.scene:
        bpy.context.window.scene = _frame.scene
    if _frame.scene.name != _frame.names["scene"]:
        _frame.scene.name = _frame.names["scene"]
    foreign = _foreign()
    if foreign:
        bpy.data.batch_remove(foreign)
    assets.drop_modified()
    for layer in list(_frame.scene.view_layers)[1:]:
        _frame.scene.view_layers.remove(layer)
    settings.apply(_frame.scene, _frame.render_settings(spec))
    if frame_differences(spec):
        build_frame(spec)
