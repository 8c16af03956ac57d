"""addon.evaluated: a modifier stack evaluated once per kind of object, and its cached
result rendered and read back exactly as the live stack would be."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from derender.addon import assets, evaluated
from derender.addon.sandbox.limits import ScriptLimits
from derender.addon.service import Service

PROGRAM = """\
import bpy
bpy.ops.mesh.primitive_cylinder_add(vertices=32, radius=1.0, depth=2.0)
obj = bpy.context.object
obj.location = (1.0, -0.5, 0.7)
obj.scale = (0.7, 0.7, 0.7)
mod = obj.modifiers.new(name='Bevel', type='BEVEL')
mod.width = {width}
mod.segments = 4
mod.profile = 0.72
obj.data.materials.append(clevr_material('metal', 'red'))
bpy.ops.mesh.primitive_cube_add(size=2.0)
obj = bpy.context.object
obj.location = (-1.5, 1.0, 0.35)
obj.rotation_euler = (0.0, 0.0, 0.5)
obj.scale = (0.35, 0.35, 0.35)
mod = obj.modifiers.new(name='Solidify', type='SOLIDIFY')
mod.thickness = {thickness}
obj.data.materials.append(clevr_material('rubber', 'blue'))
bpy.ops.object.shade_smooth()
"""


class _Steps(list):
    meshes: list[list[str]]

    def __init__(self) -> None:
        super().__init__()
        self.meshes = []


@pytest.fixture
def substituted(monkeypatch):
    """The names of the objects each step gave a cached result, one list per step (and
    the names of those results, in ``steps.meshes``)."""
    steps = _Steps()
    substitute = evaluated.substitute

    def recording(objects):
        objects = list(objects)
        missed = substitute(objects)
        given = [o for o in objects if o.data.name.startswith("derender_evaluated")]
        steps.append([o.name for o in given])
        steps.meshes.append([o.data.name for o in given])
        return missed

    monkeypatch.setattr(evaluated, "substitute", recording)
    return steps


def _evaluated_meshes() -> int:
    return sum(m.name.startswith("derender_evaluated") for m in assets.cached())


@pytest.mark.parametrize("engine", ["workbench", "cycles"])
def test_the_third_step_of_a_kind_renders_the_cached_result_identically(
    spec_for, substituted, engine: str
) -> None:
    service = Service(spec_for(engine), ScriptLimits(deadline_s=5.0))
    # keys of this test's own (the cache outlives a Service: it is the process's)
    width, thickness = (0.0625, 0.3) if engine == "cycles" else (0.0675, 0.35)
    script = PROGRAM.format(width=width, thickness=thickness)
    results = [service.step(script, masks=True) for _ in range(3)]
    assert [r.outcome for r in results] == ["ok"] * 3, [r.message for r in results]
    # seen once, then cached from the second step's evaluation, then used
    assert substituted == [[], [], ["Cylinder", "Cube"]]
    first, _, cached = results
    assert np.array_equal(first.image, cached.image)
    assert np.array_equal(first.masks, cached.masks)
    assert first.scene == cached.scene and len(cached.scene) == 2
    assert not cached.recycle
    free = service.step(script, render=False)
    assert free.outcome == "ok" and free.scene == first.scene
    assert substituted[-1] == ["Cylinder", "Cube"]
    assert service.built_frame.differences(service.frame) == []


def test_a_stack_seen_once_is_never_cached(spec_for, substituted) -> None:
    service = Service(spec_for("workbench"), ScriptLimits(deadline_s=5.0))
    cached = _evaluated_meshes()
    for i in range(3):  # a new bevel width every step: the cylinder's key never returns
        assert service.step(PROGRAM.format(width=0.05 + 0.01 * i, thickness=0.2)).outcome == "ok"
    assert substituted == [[], [], ["Cube"]]  # the solidified cube is the same each time
    assert _evaluated_meshes() == cached + 1


def test_an_edited_cached_result_ends_the_step_frame_tampered(spec_for, substituted) -> None:
    service = Service(spec_for("workbench"), ScriptLimits(deadline_s=5.0))
    script = PROGRAM.format(width=0.0725, thickness=0.25)
    want = [service.step(script) for _ in range(3)][-1]
    assert substituted[-1] == ["Cylinder", "Cube"]
    edited = bpy.data.meshes[substituted.meshes[-1][0]]  # the cylinder's
    edited.vertices[0].co = (5.0, 5.0, 5.0)  # what a hole in the sandbox could do
    tampered = service.step(script)
    assert tampered.outcome == "frame_tampered" and tampered.recycle
    assert tampered.image is None
    assert not assets.alive(edited)  # removed with the step's objects
    again = [service.step(script) for _ in range(3)]  # evaluated live, then cached again
    assert all(r.outcome == "ok" for r in again)
    assert all(np.array_equal(r.image, want.image) for r in again)


def test_the_key_is_what_the_evaluated_mesh_depends_on(built_frame, spec_for) -> None:
    def bevelled(width: float = 0.1, slots: int = 1) -> bpy.types.Object:
        mesh = assets.shape_mesh("cylinder").copy()
        mesh.materials.clear()
        for _ in range(slots):
            mesh.materials.append(None)
        obj = bpy.data.objects.new("probe", mesh)
        mod = obj.modifiers.new(name="Bevel", type="BEVEL")
        mod.width = width
        return obj

    base = evaluated.key(bevelled())
    assert base is not None
    moved = bevelled()
    moved.location, moved.scale = (1.0, 2.0, 3.0), (0.5, 0.5, 0.5)
    moved.modifiers[0].name = "Renamed"
    assert evaluated.key(moved) == base  # the transform and names do not change the mesh
    assert evaluated.key(bevelled(width=0.2)) != base
    assert evaluated.key(bevelled(slots=2)) != base
    shaded = bevelled()
    shaded.data.shade_smooth()
    assert evaluated.key(shaded) != base
    grouped = bevelled()
    grouped.vertex_groups.new(name="limit")
    assert evaluated.key(grouped) is None
    keyed = bevelled()
    keyed.shape_key_add(name="Basis")
    assert evaluated.key(keyed) is None
    viewport_only = bevelled()
    viewport_only.modifiers[0].show_render = False  # the render would not bevel it
    assert evaluated.key(viewport_only) is None
    hidden = bevelled()
    hidden.modifiers[0].show_render = hidden.modifiers[0].show_viewport = False
    assert evaluated.key(hidden) not in (None, base)
    subdivided = bevelled()
    subdivided.modifiers.new(name="Subdivision", type="SUBSURF")
    assert evaluated.key(subdivided) is None
    plain = bpy.data.objects.new("plain", assets.shape_mesh("cylinder"))
    assert evaluated.key(plain) is None  # no modifiers: nothing to save
    built_frame.reset(spec_for("workbench"))


def test_agent_code_never_reaches_a_cached_result(spec_for, substituted) -> None:
    """Results are given after the script, to objects the reset removes: a later script
    finds none of them, by any of the agent's ways to list meshes."""
    service = Service(spec_for("workbench"), ScriptLimits(deadline_s=5.0))
    script = PROGRAM.format(width=0.0825, thickness=0.15)
    for _ in range(3):
        assert service.step(script).outcome == "ok"
    assert substituted[-1] == ["Cylinder", "Cube"]
    probe = script + (
        "print(sorted(m.name for m in bpy.data.meshes))\n"
        "print(sorted(o.data.name for o in bpy.data.objects))\n"
    )
    result = service.step(probe)
    assert result.outcome == "ok", result.message
    assert "Cylinder" in result.stdout and "derender_evaluated" not in result.stdout


def test_a_cached_result_keeps_the_texture_space_of_the_live_stack(built_frame, spec_for):
    """Generated coordinates span the mesh before a solidify thickens it; the cached
    result must not span its own, larger bounds."""
    mesh = assets.shape_mesh("cube").copy()
    obj = bpy.data.objects.new("thick", mesh)
    bpy.context.scene.collection.objects.link(obj)
    solidify = obj.modifiers.new(name="Solidify", type="SOLIDIFY")
    solidify.thickness, solidify.offset = 0.5, 1.0  # outwards: the bounds grow
    depsgraph = bpy.context.evaluated_depsgraph_get()
    live = obj.evaluated_get(depsgraph).data
    live_space = (tuple(live.texspace_location), tuple(live.texspace_size))
    baked = evaluated._baker(obj.evaluated_get(depsgraph))()
    other = bpy.data.objects.new("cached", baked)
    bpy.context.scene.collection.objects.link(other)
    shown = other.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    assert (tuple(shown.texspace_location), tuple(shown.texspace_size)) == live_space
    bounds = max(abs(c) for v in baked.vertices for c in v.co)
    assert bounds > max(live_space[1]) + 0.1  # its own texture space would differ
    bpy.data.batch_remove([other, baked])
    built_frame.reset(spec_for("workbench"))


def test_a_local_modifier_points_at_no_datablock(built_frame) -> None:
    """A key holds values, not other datablocks' state: a type added to LOCAL_MODIFIERS
    with a datablock pointer (a mirror object, a displace texture) would cache a result
    that depends on something the key does not see."""
    obj = bpy.data.objects.new("probe", assets.shape_mesh("cube").copy())
    for kind in sorted(evaluated.LOCAL_MODIFIERS):
        rna = obj.modifiers.new(name=kind, type=kind).bl_rna
        pointers = [p for p in rna.properties if p.type == "POINTER"]
        to_ids = [p.identifier for p in pointers if _is_id(p.fixed_type)]
        assert to_ids == [], (kind, to_ids)


def _is_id(rna) -> bool:
    """Whether the RNA type ``rna`` is a datablock type (ID or a subtype)."""
    while rna is not None:
        if rna.identifier == "ID":
            return True
        rna = rna.base
    return False


def test_keys_seen_once_are_remembered_up_to_a_bound() -> None:
    keys = [("probe", i) for i in range(evaluated.SEEN_CAPACITY + 10)]
    evaluated.remember([(None, k) for k in keys])  # first sightings only read the key
    assert len(evaluated._SEEN) <= evaluated.SEEN_CAPACITY
    assert keys[-1] in evaluated._SEEN and keys[0] not in evaluated._SEEN
