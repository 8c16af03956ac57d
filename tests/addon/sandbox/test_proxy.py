"""What a well-behaved script can do through the proxy, the DSL and the guards."""

from __future__ import annotations

import pytest

CUBE = "import bpy\nbpy.ops.mesh.primitive_cube_add()\nobj = bpy.context.object\n"


def _ok(result):
    outcome, session = result
    assert outcome.outcome == "ok", (outcome.outcome, outcome.message, outcome.line)
    return outcome, session


def test_augmented_assignment_on_bpy_attributes(run) -> None:
    out, session = _ok(run(CUBE + "obj.location.z += 1\nobj.location[2] += 1\nobj.scale.x *= 3\n"
                           "print(obj.location.z, obj.scale.x)"))  # fmt: skip
    assert out.stdout == "2.0 3.0\n"
    ((obj, shape),) = session.data.live_objects()
    assert tuple(obj.location) == (0.0, 0.0, 2.0) and shape == "cube"


def test_print_is_captured_and_capped(run) -> None:
    out, _ = _ok(run("for i in range(1000):\n    print('line', i)", max_output_bytes=100))
    assert out.stdout.startswith("line 0\nline 1\n")
    assert "[output truncated at 100 characters]" in out.stdout and len(out.stdout) < 160


def test_random_is_seeded_per_request(run) -> None:
    script = "import random\nprint(random.random(), random.randint(0, 10**6))"
    first = _ok(run(script, seed=3))[0].stdout
    assert _ok(run(script, seed=3))[0].stdout == first
    assert _ok(run(script, seed=4))[0].stdout != first


def test_math_and_mathutils_imports(run) -> None:
    out, _ = _ok(run(
        "import math\nimport mathutils\nfrom mathutils import Vector, Euler, Matrix, Color\n"
        "v = Vector((1, 2, 2))\nprint(v.length, math.pi > 3, Euler((0, 0, 1)).z,"
        " mathutils.Vector((0, 0, 1)).z, Matrix.Identity(3)[0][0], Color((1, 0, 0)).r)"
    ))  # fmt: skip
    assert out.stdout == "3.0 True 1.0 1.0 1.0 1.0\n"


def test_data_and_context_show_only_agent_objects(run) -> None:
    out, _ = _ok(run(
        CUBE + "bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5)\n"
        "print(len(bpy.data.objects), len(bpy.context.scene.objects), bpy.context.object.name)\n"
        "print([o.name for o in bpy.data.objects], 'Camera' in bpy.data.objects)\n"
        "print(bpy.data.objects.get('Nope', 'hidden'), len(bpy.context.selected_objects))"
    ))  # fmt: skip
    assert out.stdout == "2 2 Sphere\n['Cube', 'Sphere'] False\nhidden 1\n"


def test_materials_and_principled_inputs(run) -> None:
    out, _ = _ok(run(
        CUBE + "mat = bpy.data.materials.new(name='red')\nmat.diffuse_color = (1, 0, 0, 1)\n"
        "bsdf = mat.node_tree.nodes['Principled BSDF']\n"
        "bsdf.inputs['Base Color'].default_value = (1, 0, 0, 1)\n"
        "bsdf.inputs['Metallic'].default_value = 1.0\nobj.data.materials.append(mat)\n"
        "print(obj.active_material.name, tuple(obj.active_material.diffuse_color),"
        " bsdf.inputs['Metallic'].default_value, len(bpy.data.materials))"
    ))  # fmt: skip
    assert out.stdout == "red (1.0, 0.0, 0.0, 1.0) 1.0 1\n"


def test_modifiers_shading_and_delete(run) -> None:
    out, session = _ok(run(
        CUBE + "b = obj.modifiers.new(name='B', type='BEVEL')\nb.width = 0.1\nb.segments = 3\n"
        "bpy.ops.object.modifier_add(type='SUBSURF')\nbpy.ops.object.shade_smooth()\n"
        "print([m.type for m in obj.modifiers], obj.modifiers['B'].segments)\n"
        "bpy.ops.mesh.primitive_cylinder_add()\nbpy.ops.object.delete()\n"
        "print(len(bpy.data.objects))"
    ))  # fmt: skip
    assert out.stdout == "['BEVEL', 'SUBSURF'] 3\n1\n"
    ((obj, _),) = session.data.live_objects()
    assert all(p.use_smooth for p in obj.data.polygons)


def test_dsl_add_object_and_clear(run) -> None:
    out, session = _ok(run(
        "o = add_object('sphere', 'small', 'metal', 'cyan', 1.0, -1.0, rotation=0.5)\n"
        "print(o.name, round(o.location.z, 3), len(SHAPES), sorted(SIZES))\n"
        "add_object('cube', 'large', 'rubber', 'gray', 0, 0)\nclear()\n"
        "add_object('cylinder', 'large', 'rubber', 'gray', 2, 2)"
    ))  # fmt: skip
    assert out.stdout == "sphere 0.35 3 ['large', 'small']\n"
    assert [shape for _, shape in session.data.live_objects()] == ["cylinder"]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("add_object('cone', 'large', 'metal', 'red', 0, 0)", "shape must be one of"),
        (CUBE + "obj.no_such_attribute", "has no attribute 'no_such_attribute'"),
        ("import bpy\nbpy.data.objects['Nope']", "no object of yours"),
        ("import bpy\nbpy.ops.mesh.primitive_cube_add(size=-1)", "size must be at least"),
    ],
)
def test_mistakes_are_runtime_errors_with_lines(run, script: str, message: str) -> None:
    out, _ = run(script)
    assert out.outcome == "runtime_error" and message in out.message
    assert out.line == script.count("\n") + 1 and not out.recycle


def test_runtime_error_line_is_in_the_agent_script(run) -> None:
    out, _ = run("def f(x):\n    return 1 / x\n\ny = f(0)\n")
    assert (out.outcome, out.line) == ("runtime_error", 2)
    assert out.message == "ZeroDivisionError: division by zero"


def test_allowlisted_but_missing_vs_blocked_attribute(run) -> None:
    blocked, _ = run(CUBE + "obj.constraints")
    assert (
        blocked.outcome == "sandbox_violation" and "Object('Cube').constraints" in blocked.message
    )
    assert blocked.recycle


def test_classes_and_own_containers_are_writable(run) -> None:
    out, _ = _ok(run(
        "class P:\n    def __init__(self, x):\n        self.x = x\np = P(2)\np.x += 1\n"
        "d = {}\nd['k'] = [1]\nd['k'][0] += 1\nprint(p.x, d)"
    ))  # fmt: skip
    assert out.stdout == "3 {'k': [2]}\n"


def test_cannot_write_to_functions_or_modules(run) -> None:
    out, _ = run("import math\nmath.pi = 3")
    assert out.outcome == "sandbox_violation"


def test_formatting_still_works(run) -> None:
    out, _ = _ok(run(
        "w = 6\nprint(f'{3.14159:.2f}|{\"ab\"!r:>{w}}|' + '{:>4}|{}'.format(7, 7) + '|%5.1f' % 2.0)"
    ))  # fmt: skip
    assert out.stdout == "3.14|  'ab'|   7|7|  2.0\n"
