"""The agent's resulting objects -> a :class:`Scene`, for the scene-graph reward.

Shape comes from how the object was made (the primitive operator or the DSL call, as
recorded by the sandbox); size from the object's dimensions (nearest CLEVR size); the
material and colour are exactly those of a shared CLEVR material (``clevr_material``, the
DSL), else the nearest CLEVR colour to the Principled base colour and rubber/metal from
its metallic value; x, y, z and the rotation about +z from the transform. Objects that
cannot be mapped (a cone, a tilted object, no material, non-uniform scale) are skipped
and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import bpy

from ..scenes import universe
from ..scenes.model import Scene, SceneObject
from . import assets, compat

_TILT_TOL = 1e-3  # radians: rotation about x or y beyond this is not a CLEVR pose
_SCALE_TOL = 1e-3  # relative spread of the three dimensions for "uniform"
_REST_TOL = 1e-3  # metres: within this of the resting height, z is the default


@dataclass(frozen=True)
class Readback:
    scene: Scene
    skipped: int
    reasons: tuple[str, ...]  # one per skipped object, naming it


def _base_color_and_metallic(mat: bpy.types.Material) -> tuple[tuple[float, ...], float]:
    """The Principled BSDF's values when it has one (what EEVEE/Cycles render), else the
    viewport values (what Workbench renders)."""
    try:
        bsdf = compat.principled_bsdf(mat)
    except RuntimeError:
        return tuple(mat.diffuse_color), float(mat.metallic)
    base = cast(bpy.types.NodeSocketColor, bsdf.inputs["Base Color"])
    metallic = cast(bpy.types.NodeSocketFloat, bsdf.inputs["Metallic"])
    return tuple(base.default_value), float(metallic.default_value)


def _material_and_color(mat: bpy.types.Material) -> tuple[str, str]:
    """A shared CLEVR material's own (material, color); else the nearest CLEVR colour to the
    base colour, and metal for a metallic value of 0.5 or more."""
    key = assets.material_key(mat)
    if key is not None:
        return key
    rgba, metallic = _base_color_and_metallic(mat)
    return ("metal" if metallic >= 0.5 else "rubber"), universe.nearest_color(rgba[:3])


def _nearest_size(radius: float) -> str:
    return min(universe.SIZES, key=lambda s: abs(universe.radius(s) - radius))


def read_object(obj: bpy.types.Object, shape: str | None) -> SceneObject | str:
    """The CLEVR object ``obj`` depicts, or the reason it cannot be mapped."""
    name = obj.name
    if shape not in universe.SHAPES:
        return f"{name!r}: not a CLEVR shape"
    if obj.type != "MESH":
        return f"{name!r}: not a mesh"
    # Euler and Vector are sequences of floats (the mathutils stubs lack __iter__)
    rx, ry, rz = cast("Sequence[float]", obj.rotation_euler)
    if abs(rx) > _TILT_TOL or abs(ry) > _TILT_TOL or obj.rotation_mode != "XYZ":
        euler = cast("Sequence[float]", obj.rotation_euler)
        return f"{name!r}: tilted (rotation {tuple(round(a, 4) for a in euler)})"
    dims = tuple(cast("Sequence[float]", obj.dimensions))
    if not all(math.isfinite(d) for d in dims):
        return f"{name!r}: non-finite dimensions"
    if min(dims) <= 0 or (max(dims) - min(dims)) > _SCALE_TOL * max(dims):
        return f"{name!r}: non-uniform dimensions {tuple(round(d, 4) for d in dims)}"
    mat = obj.active_material
    if mat is None:
        return f"{name!r}: no material"
    material, color = _material_and_color(mat)
    size = _nearest_size(dims[2] / 2.0)
    x, y, z = (float(v) for v in cast("Sequence[float]", obj.location))
    if not all(math.isfinite(v) for v in (x, y, z, rz)):
        return f"{name!r}: non-finite transform"
    resting = universe.radius(size)
    return SceneObject(
        shape=shape,
        size=size,
        material=material,
        color=color,
        x=x,
        y=y,
        rotation=float(rz),
        z=None if abs(z - resting) <= _REST_TOL else z,
    )


def read_back(objects: Sequence[tuple[bpy.types.Object, str | None]]) -> Readback:
    """Map the (object, creating shape) pairs, in order; unmappable ones are skipped."""
    # dimensions need the evaluated bounding boxes
    cast(bpy.types.ViewLayer, bpy.context.view_layer).update()
    mapped: list[SceneObject] = []
    reasons: list[str] = []
    for obj, shape in objects:
        result = read_object(obj, shape)
        if isinstance(result, str):
            reasons.append(result)
        else:
            mapped.append(result)
    return Readback(Scene(tuple(mapped)), len(reasons), tuple(reasons))
