"""``clevr_material``: CLEVR's shared materials for bpy-dialect scripts, read-only."""

from __future__ import annotations

import pytest

CUBE = "import bpy\nbpy.ops.mesh.primitive_cube_add(size=2.0)\nobj = bpy.context.object\n"


def test_a_script_assigns_the_shared_material_and_reads_back_exactly(service) -> None:
    result = service.step(
        CUBE + "mat = clevr_material('metal', 'brown')\nobj.data.materials.append(mat)\n"
        "print(mat.name, obj.active_material == mat)"
    )
    assert result.outcome == "ok", result.message
    assert result.stdout == "derender_brown_metal True\n"
    (obj,) = result.scene.objects
    assert (obj.shape, obj.material, obj.color) == ("cube", "metal", "brown")


def test_the_same_call_returns_the_same_shared_material(service) -> None:
    result = service.step(
        "a = clevr_material('rubber', 'cyan')\nb = clevr_material('rubber', 'cyan')\n"
        "print(a == b, a == clevr_material('metal', 'cyan'))"
    )
    assert result.outcome == "ok" and result.stdout == "True False\n"


@pytest.mark.parametrize(
    "edit",
    [
        "m.diffuse_color = (1, 0, 0, 1)",
        "m.name = 'mine'",
        "m.metallic = 0.0",
    ],
)
def test_the_shared_material_is_read_only(service, edit) -> None:
    from derender.addon import assets
    from derender.addon.rna_snapshot import snapshot

    before = snapshot(assets.material("metal", "red"))
    result = service.step(f"m = clevr_material('metal', 'red')\n{edit}")
    assert result.outcome == "runtime_error" and "read-only" in result.message
    assert snapshot(assets.material("metal", "red")) == before


def test_its_node_tree_is_not_reachable(service) -> None:
    for node in ("Group", "Material Output"):  # its nodes, as CLEVR's add_material makes them
        result = service.step(f"m = clevr_material('metal', 'red')\nm.node_tree.nodes[{node!r}]")
        assert result.outcome == "sandbox_violation" and "Principled" in result.message


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("clevr_material('gold', 'red')", "'gold'"),
        ("clevr_material('metal', 'pink')", "'pink'"),
        ("clevr_material(1, 'red')", "must be str"),
    ],
)
def test_bad_arguments_are_ordinary_errors(service, call, message) -> None:
    result = service.step(call)
    assert result.outcome == "runtime_error" and message in result.message
