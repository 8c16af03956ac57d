"""Shapes, materials and the trusted builder, and the acceptance test that both
ground-truth programs render pixel-identically to ``build(scene)``."""

from __future__ import annotations

import math

import bpy
import numpy as np
import pytest
from derender.addon import assets, build, frame, render
from derender.scenes import universe
from derender.scenes.generator import generate_scene
from derender.scenes.model import Scene
from derender.scenes.programs import bpy_program, dsl_program

_PRIMITIVES = {
    "cube": lambda: bpy.ops.mesh.primitive_cube_add(size=2.0),
    "sphere": lambda: bpy.ops.mesh.primitive_uv_sphere_add(
        segments=universe.SPHERE_SEGMENTS, ring_count=universe.SPHERE_RINGS, radius=1.0
    ),
    "cylinder": lambda: bpy.ops.mesh.primitive_cylinder_add(
        vertices=universe.CYLINDER_VERTICES, radius=1.0, depth=2.0
    ),
}


def _geometry(mesh: bpy.types.Mesh) -> tuple[list[float], list[tuple[int, ...]]]:
    """Vertex coordinates and the faces as corner tuples. Face ORDER is left out: the
    sphere operator emits faces in a memory-dependent order (the same faces, corners
    and triangulation each time), so two calls of the operator itself differ there."""
    co = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    corners = np.empty(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", corners)
    faces = sorted(
        tuple(corners[p.loop_start : p.loop_start + p.loop_total]) for p in mesh.polygons
    )
    return co.tolist(), faces


@pytest.mark.parametrize("shape", universe.SHAPES)
def test_shape_mesh_is_the_primitive_operators_mesh(shape, wb_frame):
    mesh = assets.shape_mesh(shape)
    _PRIMITIVES[shape]()
    ref = bpy.context.object.data
    assert _geometry(mesh) == _geometry(ref)
    smooth = np.empty(len(mesh.polygons), dtype=bool)
    mesh.polygons.foreach_get("use_smooth", smooth)
    assert smooth.all() == (shape in universe.SMOOTH_SHAPES) and smooth.any() == smooth.all()
    assert assets.shape_mesh(shape) is mesh or assets.shape_mesh(shape) == mesh


def test_materials_are_cached_and_carry_the_universe_values(wb_frame):
    mat = assets.material("metal", "cyan")
    assert assets.material("metal", "cyan") == mat
    assert assets.material("rubber", "cyan") != mat
    rgba = universe.color_rgba("cyan")
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    assert tuple(bsdf.inputs["Base Color"].default_value) == pytest.approx(rgba)
    assert bsdf.inputs["Metallic"].default_value == 1.0
    assert bsdf.inputs["Roughness"].default_value == pytest.approx(0.2)
    assert tuple(mat.diffuse_color) == pytest.approx(rgba)
    assert (mat.metallic, mat.roughness) == pytest.approx((1.0, 0.2))
    with pytest.raises(ValueError, match="'gold'"):
        assets.material("metal", "gold")
    with pytest.raises(ValueError, match="'cone'"):
        assets.shape_mesh("cone")


def test_add_object_places_like_clevr(wb_frame):
    a = build.add_object("cube", "large", "rubber", "red", 1.0, -2.0, rotation=0.5)
    b = build.add_object("cube", "large", "rubber", "red", 1.0, -2.0, rotation=0.5)
    c = build.add_object("cylinder", "small", "metal", "gray", 0.0, 0.0, z=2.0)
    assert a != b and a.name != b.name and a.data == b.data  # new object, shared mesh
    r = 0.7 / math.sqrt(2)
    assert tuple(a.location) == pytest.approx((1.0, -2.0, r))
    assert tuple(a.scale) == pytest.approx((r, r, r))
    assert tuple(a.rotation_euler) == pytest.approx((0.0, 0.0, 0.5))
    assert [(m.type, m.width, m.segments) for m in a.modifiers] == [
        ("BEVEL", pytest.approx(universe.BEVEL_WIDTH), universe.BEVEL_SEGMENTS)
    ]
    assert a.active_material == assets.material("rubber", "red")
    assert tuple(c.location) == pytest.approx((0.0, 0.0, 2.0)) and not c.modifiers
    assert c.active_material.name == "derender_gray_metal"
    assert a.name in bpy.context.scene.objects
    with pytest.raises(ValueError, match="'huge'"):
        build.add_object("cube", "huge", "rubber", "red", 0.0, 0.0)
    with pytest.raises(ValueError, match="x must be finite"):
        build.add_object("cube", "large", "rubber", "red", math.nan, 0.0)


def test_build_returns_objects_in_scene_order(wb_frame):
    scene = generate_scene(5, 0)
    objects = build.build(scene)
    assert [o.data.name.removeprefix("derender_") for o in objects] == [
        o.shape for o in scene.objects
    ]
    assert [tuple(o.location) for o in objects] == [
        pytest.approx(o.position) for o in scene.objects
    ]
    assert len(build.build(Scene(()))) == 0


def _render_three_ways(scene: Scene, spec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """build(scene), the DSL program and the bpy program, in trusted mode (plain exec)."""
    out = []
    for run in (
        lambda: build.build(scene),
        lambda: exec(dsl_program(scene), {"add_object": build.add_object}),
        lambda: exec(bpy_program(scene), {"bpy": bpy}),
    ):
        frame.reset(spec)
        run()
        out.append(render.render_image(spec))
    frame.reset(spec)
    return out[0], out[1], out[2]


@pytest.mark.parametrize("engine", ["workbench", "cycles"])
def test_ground_truth_programs_render_identically_to_build(engine, spec_for):
    """Acceptance: 20 random scenes, DSL and bpy programs == build, pixel for pixel."""
    spec = spec_for(engine)
    frame.reset(spec)
    empty = render.render_image(spec)
    for index in range(20):
        scene = generate_scene(2024, index)
        built, dsl, program = _render_three_ways(scene, spec)
        assert not np.array_equal(built, empty)  # the objects are really there
        assert np.array_equal(built, dsl), f"DSL differs for scene {index}"
        assert np.array_equal(built, program), f"bpy program differs for scene {index}"
