"""The primitive operators on the data API against Blender's own operators.

The reference is the script run unguarded with the real ``bpy`` (what the sandbox did
before: call the operators). Meshes compare as canonical dumps (the operators' own order
of a UV sphere's edges varies between runs), objects by transform, name, selection and
active state; whole LLM-style scripts by their image, pixel for pixel, their read-back
scene and what they print. Shared meshes stay as built whatever the script writes.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest
from derender.scenes.generator import GeneratorConfig, generate_scene
from derender.scenes.programs import bpy_program

CASES = [
    ("primitive_cube_add", {}),
    ("primitive_cube_add", {"size": 0.7, "scale": (1.0, 2.0, 0.5), "location": (1, 2, 0.35)}),
    ("primitive_plane_add", {"size": 3.0, "scale": (2.0, 2.0, 2.0)}),
    ("primitive_uv_sphere_add", {}),
    ("primitive_uv_sphere_add", {"segments": 12, "ring_count": 6, "radius": 0.35,
                                 "rotation": (0.0, 0.0, 0.7), "location": (-1, 0.5, 0.35)}),
    ("primitive_ico_sphere_add", {"subdivisions": 3, "radius": 0.5}),
    ("primitive_cylinder_add", {"vertices": 8, "end_fill_type": "TRIFAN", "calc_uvs": False}),
    ("primitive_cylinder_add", {"vertices": 32, "radius": 0.7, "depth": 1.4,
                                "rotation": (0.3, 0.2, 1.1)}),
    ("primitive_cone_add", {"radius2": 0.5, "end_fill_type": "NOTHING"}),
    ("primitive_cone_add", {"vertices": 5}),
]  # fmt: skip


def _kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _object_state(obj: Any) -> tuple:
    import bpy

    return (
        obj.name,
        tuple(obj.location),
        tuple(obj.rotation_euler),
        tuple(obj.scale),
        obj.select_get(),
        bpy.context.view_layer.objects.active == obj,
        len(obj.material_slots),
    )


@pytest.mark.parametrize(
    ("op", "kwargs"), CASES, ids=[f"{o}-{i}" for i, (o, _) in enumerate(CASES)]
)
def test_a_primitive_matches_the_operator(op, kwargs, service, run, frame_spec, dumps) -> None:
    import bpy

    service.built_frame.reset(frame_spec)
    getattr(bpy.ops.mesh, op)(**kwargs)
    real = bpy.context.view_layer.objects.active
    want_mesh, want = dumps.mesh(real.data), _object_state(real)
    service.built_frame.reset(frame_spec)
    result, session = run(f"import bpy\nbpy.ops.mesh.{op}({_kwargs(kwargs)})\n")
    assert result.outcome == "ok", result.message
    [(obj, _)] = session.data.live_objects()
    assert _object_state(obj) == want
    assert dumps.close(dumps.mesh(obj.data), want_mesh)
    assert not session.data.owns(obj.data), "the mesh is shared, not made per call"


# Beyond the ground-truth programs: what LLM-written scripts do with the objects they made.
EXTRA_SCRIPTS = [
    """import bpy
bpy.ops.mesh.primitive_uv_sphere_add(radius=0.7, location=(1.0, -1.0, 0.7))
s = bpy.context.active_object
bpy.ops.object.shade_smooth()
m = bpy.data.materials.new("red")
m.diffuse_color = (0.8, 0.1, 0.1, 1.0)
s.data.materials.append(m)
print(s.name, s.data.name, len(s.data.materials), [o.name for o in bpy.context.selected_objects])
bpy.ops.mesh.primitive_cube_add(size=1.4, location=(-1.5, 1.0, 0.7), rotation=(0, 0, 0.4))
c = bpy.context.object
c.active_material = m
print(c.name, c.data.name, len(c.material_slots), bpy.context.object.name)
""",
    """import bpy
for i in range(4):
    bpy.ops.mesh.primitive_cylinder_add(vertices=16, radius=0.35, depth=0.7,
                                        location=(i - 1.5, 0.5 * i, 0.35))
    o = bpy.context.object
    o.name = "cyl_%d" % i
    mat = bpy.data.materials.new(name="m%d" % i)
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (0.1, 0.2 * i, 0.5, 1)
    bsdf.inputs["Metallic"].default_value = 1.0 * (i % 2)
    o.data.materials.append(mat)
    if i % 2:
        o.data.shade_smooth()
print(sorted(o.data.name for o in bpy.context.scene.objects if o.name.startswith("cyl")))
""",
    """import bpy
bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=2, radius=0.6, location=(0, 0, 0.6))
bpy.ops.mesh.primitive_cone_add(radius1=0.5, depth=1.0, location=(1.5, 1.5, 0.5))
bpy.ops.mesh.primitive_plane_add(size=0.8, location=(-1.5, -1.5, 0.01))
bpy.ops.object.shade_smooth()
bpy.ops.object.shade_flat()
bpy.ops.mesh.primitive_cube_add(location=(2, -2, 1), calc_uvs=False)
cube = bpy.context.object
bpy.ops.object.modifier_add(type="BEVEL")
cube.modifiers[0].width = 0.2
cube.data.name = "box"
print(cube.data.name, [o.name for o in bpy.context.selected_objects])
bpy.ops.object.select_all(action="DESELECT")
bpy.data.objects["Cone"].select_set(True)
bpy.ops.object.delete()
print(len(bpy.context.selected_objects), bpy.context.object.name)
""",
]


def _scripts() -> list[str]:
    config = GeneratorConfig(min_objects=3, max_objects=8)
    return [bpy_program(generate_scene(77, i, config)) for i in range(4)] + EXTRA_SCRIPTS


def _unguarded(built_frame: Any, script: str, spec: Any) -> tuple[np.ndarray, Any, str]:
    """The script with the real bpy (the operators): its image, read-back and output."""
    import bpy
    from derender.addon import assets, render
    from derender.addon.readback import read_back

    built_frame.reset(spec)
    before = set(bpy.context.scene.objects)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(
            compile(script, "<unguarded>", "exec"), {"bpy": bpy, "clevr_material": assets.material}
        )
    image = render.render_image(spec)
    made = [o for o in bpy.context.scene.objects if o not in before]
    made.sort(key=lambda o: o.session_uid)  # creation order
    shapes = {"Cube": "cube", "Sphere": "sphere", "Icosphere": "sphere", "Cylinder": "cylinder"}
    pairs = [(o, shapes.get(o.data.name.split(".")[0])) for o in made]
    back = read_back(pairs)
    built_frame.reset(spec)
    return image, back, out.getvalue()


@pytest.mark.parametrize("index", range(len(_scripts())))
def test_scripts_render_and_read_back_as_with_the_operators(index, service, frame_spec) -> None:
    from derender.addon import assets

    script = _scripts()[index]
    image, back, printed = _unguarded(service.built_frame, script, frame_spec)
    result = service.step(script, masks=False)
    assert result.outcome == "ok", (result.message, result.line)
    assert np.array_equal(result.image, image)
    assert result.scene == back.scene and result.unmapped == back.skipped
    assert result.stdout == printed
    assert assets.edited(assets.cached()) == [], "a shared mesh was written"


def test_writes_go_to_private_copies_and_shared_meshes_stay(run) -> None:
    from derender.addon import assets

    script = """import bpy
bpy.ops.mesh.primitive_cube_add()
a = bpy.context.object
bpy.ops.mesh.primitive_cube_add(location=(2, 0, 0))
b = bpy.context.object
mat = bpy.data.materials.new("m")
a.data.materials.append(mat)
b.material_slots  # no slot yet: the mesh has no materials
b.active_material = mat
bpy.ops.mesh.primitive_cube_add(location=(4, 0, 0))
bpy.context.object.data.name = "renamed"
"""
    result, session = run(script)
    assert result.outcome == "ok", result.message
    objects = [o for o, _ in session.data.live_objects()]
    assert all(session.data.owns(o.data) for o in objects), "each written mesh is private"
    assert len({o.data.session_uid for o in objects}) == 3
    assert [o.data.name for o in objects] == ["Cube", "Cube.001", "renamed"]
    assert assets.edited(assets.cached()) == []
    shared = [m for m in assets.cached() if m.name.startswith("derender_primitive_cube")]
    assert shared and all(len(m.materials) == 0 for m in shared)


def test_shading_swaps_to_a_shared_variant_without_copying(run, dumps) -> None:
    script = """import bpy
bpy.ops.mesh.primitive_uv_sphere_add()
bpy.ops.object.shade_smooth()
bpy.ops.mesh.primitive_uv_sphere_add(location=(2, 0, 0))
bpy.context.object.data.shade_smooth()
"""
    result, session = run(script)
    assert result.outcome == "ok", result.message
    a, b = (o for o, _ in session.data.live_objects())
    assert a.data == b.data and not session.data.owns(a.data)
    assert all(p.use_smooth for p in a.data.polygons)
