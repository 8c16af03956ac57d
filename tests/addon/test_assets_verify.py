"""assets.verify_in_use: before a render, the cached assets it can use are compared with
their snapshots, and an edited one is rebuilt in place of it in every user; an edited
asset that nothing uses waits for the render that uses it. Each is compared once after
code other than derender's ran (assets.distrust, which the runner calls after agent
code): the tests' edits stand for such code, so each is followed by a distrust."""

from __future__ import annotations

import bpy
import pytest
from derender.addon import assets

GREEN = (0.0, 1.0, 0.0, 1.0)


@pytest.fixture
def clean_assets(wb_frame):
    """No cached asset before the test, none edited after it."""
    bpy.data.batch_remove(assets.cached())
    assets.trim()
    yield
    bpy.data.batch_remove(assets.cached())
    assets.trim()


def _user(name: str, mesh: bpy.types.Mesh, mat: bpy.types.Material) -> bpy.types.Object:
    obj = bpy.data.objects.new(name, mesh)
    obj.material_slots[0].link = "OBJECT"
    obj.material_slots[0].material = mat
    return obj


def test_an_edited_asset_in_use_is_rebuilt_in_place_in_every_user(clean_assets) -> None:
    mesh, mat = assets.shape_mesh("cube"), assets.material("metal", "red")
    users = [_user("a", mesh, mat), _user("b", mesh, mat)]
    mat.diffuse_color = GREEN
    mesh.vertices[0].co.z += 0.5
    assets.distrust()
    assert assets.in_use() == [mesh, mat, _group(mat)]
    assert sorted(assets.verify_in_use()) == ["derender_cube", "derender_red_metal"]
    new_mesh, new_mat = assets.shape_mesh("cube"), assets.material("metal", "red")
    assert not assets.alive(mesh) and not assets.alive(mat)
    assert all(o.data == new_mesh and o.material_slots[0].material == new_mat for o in users)
    assert (new_mesh.name, new_mat.name) == ("derender_cube", "derender_red_metal")
    assert tuple(new_mat.diffuse_color) != GREEN
    assert assets.is_asset(new_mat) and assets.material_key(new_mat) == ("metal", "red")
    assert assets.edited(assets.cached()) == [] and assets.verify_in_use() == []
    bpy.data.batch_remove(users)


def test_an_edited_asset_nothing_uses_waits_for_the_render_that_uses_it(clean_assets) -> None:
    used, unused = assets.material("metal", "red"), assets.material("rubber", "blue")
    obj = _user("a", assets.shape_mesh("sphere"), used)
    unused.roughness = 0.0
    assets.distrust()
    assert assets.verify_in_use() == [] and assets.edited(assets.cached()) == [unused]
    obj.material_slots[0].material = unused
    assert assets.verify_in_use() == ["derender_blue_rubber"]
    assert obj.material_slots[0].material.roughness != 0.0
    assert assets.edited(assets.cached()) == []
    bpy.data.objects.remove(obj)


def test_a_pointer_from_any_datablock_counts_as_a_use(clean_assets) -> None:
    """A geometry-nodes socket is a use too: Blender's ID map lists every pointer."""
    mat = assets.material("metal", "red")
    tree = bpy.data.node_groups.new("g", "GeometryNodeTree")
    tree.nodes.new("GeometryNodeSetMaterial").inputs["Material"].default_value = mat
    mat.roughness = 0.0
    assets.distrust()
    assert assets.in_use() == [mat, _group(mat)]
    assert assets.verify_in_use() == ["derender_red_metal"]
    bpy.data.node_groups.remove(tree)


def _group(mat: bpy.types.Material) -> bpy.types.ShaderNodeTree:
    (node,) = [n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeGroup"]
    return node.node_tree


def test_an_edited_surface_group_is_rebuilt_in_every_material(clean_assets) -> None:
    """A material's group is an asset of its own; its replacement is remapped into every
    material of the kind, used or not, and nothing is reported again after that."""
    red, blue = assets.material("metal", "red"), assets.material("metal", "blue")
    group = _group(red)
    obj = _user("a", assets.shape_mesh("cube"), red)
    mix = next(n for n in group.nodes if n.bl_idname == "ShaderNodeMixShader")
    mix.inputs["Fac"].default_value = 1.0
    assets.distrust()
    assert assets.verify_in_use() == ["derender_MyMetal"]
    new = _group(red)
    assert not assets.alive(group) and new.name == "derender_MyMetal" and _group(blue) == new
    assert next(n for n in new.nodes if n.bl_idname == "ShaderNodeMixShader").inputs[
        "Fac"
    ].default_value == pytest.approx(0.6)
    assert assets.edited(assets.cached()) == []
    obj.material_slots[0].material = blue  # the other material: its snapshot follows too
    assets.distrust()
    assert assets.verify_in_use() == [] and assets.material("metal", "blue") == blue
    bpy.data.objects.remove(obj)


def test_each_asset_is_compared_once_after_each_distrust(clean_assets) -> None:
    """Made, or compared before a render, an asset is known as made until code other than
    derender's runs again: renders after literal DSL programs (no agent code) compare
    nothing, the first render after agent code compares what it uses."""
    mat = assets.material("metal", "red")
    obj = _user("a", assets.shape_mesh("cube"), mat)
    assets.distrust()
    assert assets.verify_in_use() == []  # compared: as made
    mat.roughness = 0.0  # no distrust: by contract only derender's code ran
    assert assets.verify_in_use() == []
    assets.distrust()
    assert assets.verify_in_use() == ["derender_red_metal"]
    assert obj.material_slots[0].material.roughness != 0.0
    bpy.data.objects.remove(obj)
