"""Every syntax that reaches an attribute by name goes through the one guarded getattr.

The attack corpus holds the hostile variants; these tests pin the mechanisms: compiled
agent code has no import opcodes left (CPython's IMPORT_FROM is a plain getattr), each
import component is checked like ``a.b``, and ``str.format`` is guarded for ``str``, its
instances and its subclasses.
"""

from __future__ import annotations

import dis

import pytest
from derender.addon.sandbox.lines import LineProgram
from derender.addon.sandbox.policy import compile_script

IMPORTS = (
    "import bpy\n",
    "import bpy.ops.mesh\n",
    "import bpy.ops.mesh as m\n",
    "from bpy import ops\n",
    "from bpy.ops import mesh as m, object\n",
    "def f():\n    import math\n    from mathutils import Vector\n    return Vector\n",
    "class A:\n    import random\n",
)


def _opnames(code) -> set[str]:
    if isinstance(code, LineProgram):  # compiled a line at a time
        return set().union(*map(_opnames, code.codes))
    names = {i.opname for i in dis.get_instructions(code)}
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            names |= _opnames(const)
    return names


@pytest.mark.parametrize("source", IMPORTS)
def test_compiled_scripts_have_no_import_opcodes(source: str) -> None:
    ops = _opnames(compile_script(source, 10_000))
    assert not ops & {"IMPORT_NAME", "IMPORT_FROM", "IMPORT_STAR"}, ops


@pytest.mark.parametrize(
    "source",
    [
        "import bpy._real as r\n",
        "import bpy.data._s\n",
        "from bpy import _real\n",
        "from bpy.data import _real as x\n",
        "import math.f_globals\n",
        "from . import x\n",
    ],
)
def test_private_import_components_are_refused_at_compile_time(source: str) -> None:
    from derender.addon.sandbox.policy import CompileFailure

    with pytest.raises(CompileFailure) as info:
        compile_script(source, 10_000)
    assert info.value.outcome == "sandbox_violation"


@pytest.mark.parametrize(
    ("script", "outcome"),
    [
        ("import bpy.ops.mesh as m\nm.primitive_cube_add(size=1.0)\n", "ok"),
        ("from bpy.ops import mesh\nmesh.primitive_cube_add(size=1.0)\n", "ok"),
        ("import bpy.ops.mesh\nbpy.ops.mesh.primitive_cube_add(size=1.0)\n", "ok"),
        ("from mathutils import Vector\nv = Vector((1, 2, 3))\n", "ok"),
        # components Blender has but the allowlist lacks: refused like bpy.app
        ("from bpy import app\n", "sandbox_violation"),
        ("import bpy.app.handlers as h\n", "sandbox_violation"),
        ("from mathutils.Vector import Fill\n", "sandbox_violation"),
        ("from mathutils import Vector\nVector.Fill(10**9)\n", "sandbox_violation"),
        # methods of the proxy classes are not attributes of the proxied thing
        ("from bpy.data import real_collection\n", "runtime_error"),
        ("import bpy.data.objects.items as i\n", "sandbox_violation"),
        ("import os\n", "sandbox_violation"),
        ("from os import path\n", "sandbox_violation"),
    ],
)
def test_import_components_pass_the_getattr_guard(run, script: str, outcome: str) -> None:
    result, _ = run(script)
    assert result.outcome == outcome, result.message


@pytest.mark.parametrize(
    "script",
    [
        "class S(str):\n    pass\nS.format('{0.__class__}', 1)\n",
        "class S(str):\n    pass\ngetattr(S, 'format')('{0.__class__}', 1)\n",
        "class S(str):\n    pass\nS('{0.__class__}').format(1)\n",
        "str.format_map('{a.__class__}', {'a': 1})\n",
        "t = 'x'\nt = '{0.__traceback__}'\ntry:\n    1 / 0\nexcept Exception as e:\n"
        "    t.format(e)\n",
        "'{0.real.__class__}'.format(1)\n",
        "'{0:{1.__class__}}'.format(1, 2)\n",
    ],
)
def test_format_fields_pass_the_getattr_guard(run, script: str) -> None:
    result, _ = run(script)
    assert result.outcome == "sandbox_violation", result.message


def test_benign_format_still_works(run) -> None:
    result, _ = run("print('{0} {1:>4} {x.real}'.format(1, 'a', x=2))\n")
    assert (result.outcome, result.stdout) == ("ok", "1    a 2\n")


@pytest.mark.parametrize(
    "script",
    [
        "'x'.ljust(10**9)\n",
        "'x'.center(10**9)\n",
        "b'x'.zfill(10**9)\n",
        "'\\t' * 1000\n('\\t' * 1000).expandtabs(10**6)\n",
        "('a' * 1000).replace('a', 'b' * 10000)\n",
        "''.replace('', 'x' * 10**6)\n'a' * 10**6\n('a' * 10**6).replace('', 'xy')\n",
        "('a' * 1000).translate({97: 'b' * 10000})\n",
        "''.join(['x' * 100000] * 100)\n",
        "'-'.join(str(i) * 100 for i in range(20000))\n",
        "(1).to_bytes(10**9, 'big')\n",
        "(1).to_bytes(length=10**9, byteorder='big')\n",
        "s = 'x' * 1000\nfor i in range(40):\n    s = s + s\n",
        "s = ['x'] * 1000\nfor i in range(40):\n    s += s\n",
        "s = ('x',) * 1000\nfor i in range(40):\n    s += s\n",
        "l = [0] * 1000\nfor i in range(30):\n    l.extend(l)\n",
        "sum([[0] * 1000] * 10000, [])\n",
        "('{0}' * 1000).format('x' * 10000)\n",
        "a = 2**4000 + 1\npow(a, 2**40000, a * a * a * a + 7)\n",
        "pow(3, 10**30, 2**30000 + 1)\n",
    ],
)
def test_size_producing_operations_are_capped(run, script: str) -> None:
    result, _ = run(script)
    assert result.outcome == "resource_limit", (result.outcome, result.message)


def test_capped_methods_still_work_when_small(run) -> None:
    script = (
        "print('ab'.ljust(4, '.'), '7'.zfill(3), 'a-b'.replace('-', '+'), "
        "'-'.join(['x', 'y']), (258).to_bytes(2, 'big'), pow(3, 5, 7), sum([[1], [2]], []))\n"
        "l = [1]\nl.extend(range(3))\nprint(l)\n"
    )
    result, _ = run(script)
    assert result.outcome == "ok", result.message
    assert result.stdout == "ab.. 007 a+b x-y b'\\x01\\x02' 5 [1, 2]\n[1, 0, 1, 2]\n"


@pytest.mark.parametrize(
    "script",
    [
        "bpy.ops.mesh.primitive_cylinder_add(vertices=1000)\n"
        "bpy.context.object.modifiers.new(name='s', type='SUBSURF')\n",
        "bpy.ops.mesh.primitive_cylinder_add(vertices=200, end_fill_type='TRIFAN')\n"
        "bpy.ops.object.modifier_add(type='SUBSURF')\n",
        "bpy.ops.mesh.primitive_cone_add(vertices=64)\n"
        "m = bpy.context.object.modifiers.new(name='s', type='SUBSURF')\nm.levels = 1\n",
    ],
)
def test_subdividing_high_valence_faces_is_refused(run, script: str) -> None:
    result, _ = run("import bpy\n" + script)
    assert result.outcome == "resource_limit", (result.outcome, result.message)
    assert "corners or edges" in result.message


def test_subdividing_ordinary_meshes_is_allowed(run) -> None:
    script = (
        "import bpy\nbpy.ops.mesh.primitive_cylinder_add(vertices=32)\n"
        "m = bpy.context.object.modifiers.new(name='s', type='SUBSURF')\nm.levels = 2\n"
        "bpy.ops.mesh.primitive_cube_add()\nbpy.ops.object.modifier_add(type='SUBSURF')\n"
    )
    result, _ = run(script)
    assert result.outcome == "ok", result.message
