"""Shapes, materials and the trusted builder, and the acceptance test that both
ground-truth programs render pixel-identically to ``build(scene)``."""

from __future__ import annotations

import math

import bpy
import numpy as np
import pytest
from derender.addon import assets, build, render
from derender.scenes import universe
from derender.scenes.generator import generate_scene
from derender.scenes.model import Scene
from derender.scenes.programs import bpy_program, dsl_program


def _primitive_with_modifiers(shape: str) -> bpy.types.Mesh:
    """What a bpy program makes: the operator, the universe's modifiers, evaluated."""
    op, args = universe.PRIMITIVES[shape]
    getattr(bpy.ops.mesh, op)(**args)
    obj = bpy.context.object
    for kind, settings in universe.MODIFIERS[shape]:
        mod = obj.modifiers.new(name=kind.title(), type=kind)
        for attr, value in settings.items():
            setattr(mod, attr, value)
    if shape in universe.SMOOTH_SHAPES:
        bpy.ops.object.shade_smooth()
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    return bpy.data.meshes.new_from_object(evaluated)


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
def test_shape_mesh_is_the_primitive_with_its_modifiers_applied(shape, wb_frame):
    mesh = assets.shape_mesh(shape)
    ref = _primitive_with_modifiers(shape)
    assert _geometry(mesh) == _geometry(ref)
    smooth = np.empty(len(mesh.polygons), dtype=bool)
    mesh.polygons.foreach_get("use_smooth", smooth)
    assert smooth.all() == (shape in universe.SMOOTH_SHAPES) and smooth.any() == smooth.all()
    assert len(mesh.vertices) == {"cube": 296, "sphere": 642, "cylinder": 1280}[shape]
    assert assets.shape_mesh(shape) is mesh or assets.shape_mesh(shape) == mesh
    bpy.data.meshes.remove(ref)


def _surface(mat: bpy.types.Material) -> bpy.types.Node:
    """The material's one group node, as CLEVR's add_material makes it: output <- group."""
    group, output = sorted(mat.node_tree.nodes, key=lambda n: n.bl_idname)
    assert (output.bl_idname, group.bl_idname) == ("ShaderNodeOutputMaterial", "ShaderNodeGroup")
    assert output.inputs["Surface"].links[0].from_node == group
    return group


def _node(mat: bpy.types.Material, idname: str, **match: object) -> list:
    return [
        n
        for n in _surface(mat).node_tree.nodes
        if n.bl_idname == idname and all(getattr(n, k) == v for k, v in match.items())
    ]


def test_materials_are_cached_and_are_clevrs_node_trees(wb_frame):
    metal = assets.material("metal", "cyan")
    assert assets.material("metal", "cyan") == metal
    rubber = assets.material("rubber", "cyan")
    assert rubber != metal
    rgba = pytest.approx(universe.color_rgba("cyan"))
    lobes = _node(metal, "ShaderNodeBsdfAnisotropic", distribution="GGX")
    assert sorted(round(n.inputs["Roughness"].default_value ** 2, 6) for n in lobes) == [
        0.01,
        0.2,
    ]  # 2.78's roughness, squared since 2.8
    assert all(n.inputs["Color"].links[0].from_node.type == "GROUP_INPUT" for n in lobes)
    assert all(n.inputs["Anisotropy"].default_value == 0.25 for n in lobes)
    assert all(n.inputs["Tangent"].is_linked for n in lobes)
    (mix,) = _node(metal, "ShaderNodeMixShader")
    assert mix.inputs["Fac"].default_value == pytest.approx(0.6)
    assert mix.inputs[2].links[0].from_node.inputs["Roughness"].default_value == pytest.approx(0.1)
    (velvet,) = _node(rubber, "ShaderNodeBsdfSheen", distribution="ASHIKHMIN")
    assert velvet.inputs["Roughness"].default_value == pytest.approx(0.6)
    assert velvet.inputs["Color"].links[0].from_node.type == "GROUP_INPUT"
    for mat in (metal, rubber):  # the colour is the group node's, the surface is shared
        assert tuple(_surface(mat).inputs["Color"].default_value) == rgba
    assert _surface(rubber).node_tree.name == "derender_Rubber"
    assert _surface(metal).node_tree == _surface(assets.material("metal", "red")).node_tree
    (glossy,) = _node(rubber, "ShaderNodeBsdfAnisotropic", distribution="BECKMANN")
    assert glossy.inputs["Roughness"].default_value ** 2 == pytest.approx(0.35)
    fresnel = sorted(n.inputs["IOR"].default_value for n in _node(rubber, "ShaderNodeFresnel"))
    assert fresnel == [pytest.approx(1.2), pytest.approx(1.4)]
    for mat, metallic in ((metal, 1.0), (rubber, 0.0)):  # what Workbench renders
        assert tuple(mat.diffuse_color) == rgba and mat.metallic == metallic
        assert assets.material_key(mat) == (("metal" if metallic else "rubber"), "cyan")
    assert assets.material_key(bpy.data.materials.new("mine")) is None
    with pytest.raises(ValueError, match="'gold'"):
        assets.material("metal", "gold")
    with pytest.raises(ValueError, match="'cone'"):
        assets.shape_mesh("cone")


def test_add_object_places_like_clevr(wb_frame):
    a = build.add_object("cube", "large", "rubber", "red", 1.0, -2.0, rotation=0.5)
    b = build.add_object("cube", "large", "rubber", "red", 1.0, -2.0, rotation=0.5)
    c = build.add_object("cylinder", "small", "metal", "gray", 0.0, 0.0, z=2.0)
    assert a != b and a.name != b.name and a.data == b.data  # new object, shared mesh
    r = 0.7  # CLEVR scales a cube like every shape (its sqrt(2) rule never fires)
    assert tuple(a.location) == pytest.approx((1.0, -2.0, r))
    assert tuple(a.scale) == pytest.approx((r, r, r))
    bpy.context.view_layer.update()
    assert tuple(a.dimensions) == pytest.approx((2 * r, 2 * r, 2 * r))
    assert tuple(a.rotation_euler) == pytest.approx((0.0, 0.0, 0.5))
    assert not a.modifiers  # the cached mesh has them applied
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


def _render_three_ways(
    built_frame, scene: Scene, spec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """build(scene), the DSL program and the bpy program, in trusted mode (plain exec)."""
    out = []
    for run in (
        lambda: build.build(scene),
        lambda: exec(dsl_program(scene), {"add_object": build.add_object}),
        lambda: exec(bpy_program(scene), {"bpy": bpy, "clevr_material": assets.material}),
    ):
        built_frame.reset(spec)
        run()
        out.append(render.render_image(spec))
    built_frame.reset(spec)
    return out[0], out[1], out[2]


@pytest.mark.parametrize("engine", ["workbench", "cycles"])
def test_ground_truth_programs_render_identically_to_build(built_frame, engine, spec_for):
    """Acceptance: 20 random scenes, DSL and bpy programs == build, pixel for pixel."""
    spec = spec_for(engine)
    built_frame.reset(spec)
    empty = render.render_image(spec)
    for index in range(20):
        scene = generate_scene(2024, index)
        built, dsl, program = _render_three_ways(built_frame, scene, spec)
        assert not np.array_equal(built, empty)  # the objects are really there
        assert np.array_equal(built, dsl), f"DSL differs for scene {index}"
        assert np.array_equal(built, program), f"bpy program differs for scene {index}"
