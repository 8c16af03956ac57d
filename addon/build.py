"""Trusted Scene -> bpy objects: how targets are made, and the DSL's ``add_object``.

Placement is CLEVR's (``utils.add_object``): the unit shape scaled uniformly by the
object's size, resting on the ground (z = size unless given), rotated about +z by
``rotation`` radians. Objects share the cached unit meshes (their modifiers already
applied); the material is linked per object so shared meshes can carry different materials.
"""

from __future__ import annotations

from typing import cast

import bpy

from ..scenes.model import Scene, SceneObject
from . import assets


def add_object(
    shape: str,
    size: str,
    material: str,
    color: str,
    x: float,
    y: float,
    rotation: float = 0.0,
    z: float | None = None,
) -> bpy.types.Object:
    """A NEW object for one CLEVR object, linked to the current scene; ValueError names
    a bad argument (validation is :class:`SceneObject`'s)."""
    spec = SceneObject(shape, size, material, color, x, y, rotation, z)
    obj = bpy.data.objects.new(f"{spec.shape}", assets.shape_mesh(spec.shape))
    r = spec.radius
    obj.location = spec.position
    obj.rotation_euler = (0.0, 0.0, spec.rotation)
    obj.scale = (r, r, r)
    slot = obj.material_slots[0]
    slot.link = "OBJECT"
    slot.material = assets.material(spec.material, spec.color)
    cast(bpy.types.Scene, bpy.context.scene).collection.objects.link(obj)
    return obj


def build(scene: Scene) -> list[bpy.types.Object]:
    """The scene's objects, in order (ids 1..n of ``render_masks``)."""
    return [
        add_object(o.shape, o.size, o.material, o.color, o.x, o.y, o.rotation, o.z)
        for o in scene.objects
    ]
