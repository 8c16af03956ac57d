"""addon.readback: agent objects -> Scene, with unmappable objects skipped and counted."""

from __future__ import annotations

import math

import bpy
import pytest
from derender.scenes.frame import FrameSpec
from derender.scenes.model import Scene, SceneObject

SPEC = FrameSpec(width=64, height=64, engine="workbench", samples=8)


@pytest.fixture
def frame():
    from derender.addon.frame import BuiltFrame

    built_frame = BuiltFrame(SPEC)
    yield SPEC
    built_frame.reset(SPEC)


def _material(metallic: float, rgba: tuple[float, float, float, float]) -> bpy.types.Material:
    from derender.addon.compat import principled_bsdf

    mat = bpy.data.materials.new("m")
    bsdf = principled_bsdf(mat)
    bsdf.inputs["Base Color"].default_value = rgba
    bsdf.inputs["Metallic"].default_value = metallic
    return mat


def test_trusted_build_reads_back_exactly(frame) -> None:
    from derender.addon.build import build
    from derender.addon.readback import read_back

    scene = Scene((
        SceneObject("cube", "large", "metal", "red", 1.25, -2.0, 0.7),
        SceneObject("sphere", "small", "rubber", "cyan", -1.0, 0.5, 5.5),
        SceneObject("cylinder", "large", "rubber", "yellow", 2.0, 2.0, 0.0, z=1.5),
    ))  # fmt: skip
    objs = build(scene)
    back = read_back([(o, s.shape) for o, s in zip(objs, scene.objects, strict=True)])
    assert back.skipped == 0
    for got, want in zip(back.scene.objects, scene.objects, strict=True):
        assert got.attributes() == want.attributes()
        for name in ("x", "y", "z", "rotation"):
            assert getattr(got, name) == pytest.approx(getattr(want, name), abs=1e-5)


def test_operator_object_with_nearest_colour_and_size(frame) -> None:
    from derender.addon.readback import read_back

    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, location=(0.5, 0.25, 0.36))
    obj = bpy.context.object
    obj.scale = (0.36, 0.36, 0.36)  # 0.35 is "small": the nearest size wins
    obj.data.materials.append(_material(0.9, (0.1, 0.8, 0.85, 1.0)))  # ~cyan
    back = read_back([(obj, "sphere")])
    (got,) = back.scene.objects
    assert (got.shape, got.size, got.material, got.color) == ("sphere", "small", "metal", "cyan")
    assert (got.x, got.y) == pytest.approx((0.5, 0.25)) and got.z == pytest.approx(0.36)


def test_unmappable_objects_are_skipped_and_counted(frame) -> None:
    from derender.addon.readback import read_back

    made = []
    bpy.ops.mesh.primitive_cone_add()
    made.append((bpy.context.object, None))  # a cone is no CLEVR shape
    bpy.ops.mesh.primitive_cube_add(rotation=(math.pi / 4, 0, 0))
    made.append((bpy.context.object, "cube"))  # tilted
    bpy.ops.mesh.primitive_cube_add(scale=(1, 2, 1))
    made.append((bpy.context.object, "cube"))  # not uniform
    bpy.ops.mesh.primitive_cube_add()
    made.append((bpy.context.object, "cube"))  # no material
    bpy.ops.mesh.primitive_cube_add(scale=(math.nan, math.nan, math.nan))
    made.append((bpy.context.object, "cube"))  # non-finite
    bpy.ops.mesh.primitive_cylinder_add()
    obj = bpy.context.object
    obj.data.materials.append(_material(0.0, (0.5, 0.5, 0.5, 1.0)))
    made.append((obj, "cylinder"))
    back = read_back(made)
    assert back.skipped == 5 and len(back.reasons) == 5
    assert [o.shape for o in back.scene.objects] == ["cylinder"]
    assert any("tilted" in r for r in back.reasons) and any(
        "no material" in r for r in back.reasons
    )
