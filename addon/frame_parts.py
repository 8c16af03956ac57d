"""The parts of the locked CLEVR frame, made in Blender: camera, lights, backdrop, world.

:func:`build_parts` makes them into a scene from a :class:`FrameSpec` and
:func:`apply_render_settings` sets what the spec fixes in the render; :mod:`.frame` owns
the built frame (its snapshots, its check and its reset).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import bpy
from mathutils import Matrix, Vector

from ..scenes import backdrop
from ..scenes.frame import FrameSpec, Light
from . import assets, compat, render_settings

GROUND_ROUGHNESS = 0.5  # the default Principled BSDF's (see _set_ground_material)
CLIP_START = 0.1
CLIP_END = 100.0  # base_scene.blend's camera


def look_at(location: Sequence[float], target: Sequence[float]) -> Matrix:
    """World matrix of a camera/light at ``location`` whose -Z points at ``target``, +Y up.

    Same basis as ``FrameSpec.camera.basis()`` (right = fwd x Z), so ``FrameSpec.project``
    predicts where Blender draws a point.
    """
    loc = Vector(location)
    quat = (Vector(target) - loc).to_track_quat("-Z", "Y")
    return Matrix.Translation(loc) @ quat.to_matrix().to_4x4()


def _link(scene: bpy.types.Scene, obj: bpy.types.Object) -> bpy.types.Object:
    scene.collection.objects.link(obj)
    return obj


def ground_matrix() -> Matrix:
    """The backdrop object's world matrix (base_scene.blend's ``Ground``)."""
    return Matrix.Translation(backdrop.LOCATION) @ Matrix.Rotation(backdrop.ROTATION_Z, 4, "Z")


def _backdrop_mesh() -> bpy.types.Mesh:
    """CLEVR's backdrop: the profile extruded, its Subdivision modifier applied."""
    base = bpy.data.meshes.new("Ground_base")
    base.from_pydata(backdrop.vertices(), [], backdrop.faces())
    mesh = assets.bake(base, [("SUBSURF", backdrop.SUBSURF)], "Ground")
    mesh.shade_flat()
    return mesh


def _add_light(scene: bpy.types.Scene, light: Light) -> bpy.types.Object:
    kind = cast("Literal['AREA', 'SUN']", light.kind)  # Light validates it
    data = bpy.data.lights.new(light.name, type=kind)
    obj = _link(scene, bpy.data.objects.new(light.name, data))
    set_light(obj, light)
    return obj


# EEVEE cuts a light off at a distance it derives from the light's power; for CLEVR's
# lamps that is closer than the floor (the back lamp lit nothing), so it is set to reach
# past the backdrop. Cycles has no cut-off.
LIGHT_REACH = 100.0


def set_light(obj: bpy.types.Object, light: Light) -> None:
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


def build_parts(scene: bpy.types.Scene, spec: FrameSpec) -> dict[str, bpy.types.Object]:
    """Camera, lights, ground and world of ``spec`` into ``scene``; the objects by role."""
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
    return objects


def apply_render_settings(scene: bpy.types.Scene, spec: FrameSpec) -> None:
    """Set what the spec fixes in the render; the scene keeps one view layer."""
    for layer in list(scene.view_layers)[1:]:
        scene.view_layers.remove(layer)
    render_settings.apply(scene, render_settings.spec_settings(spec))


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
