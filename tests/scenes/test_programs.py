"""Ground-truth programs are valid Python that carry every attribute exactly."""

from __future__ import annotations

import ast

import pytest
from derender.scenes import SceneObject, bpy_program, dsl_program, generate_scene, write_program


def test_dsl_program_reproduces_the_scene_exactly():
    scene = generate_scene(9, 2)
    calls = []
    exec(dsl_program(scene), {"add_object": lambda **kw: calls.append(kw)})
    rebuilt = [SceneObject(**kw) for kw in calls]
    assert tuple(rebuilt) == scene.stripped().objects


def test_bpy_program_is_valid_python_with_one_primitive_per_object():
    scene = generate_scene(9, 3)
    tree = ast.parse(bpy_program(scene))
    ops = [
        n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr.startswith("primitive_")
    ]
    assert len(ops) == len(scene)


def test_unknown_dialect_is_rejected():
    with pytest.raises(ValueError, match="dialect"):
        write_program(generate_scene(0), "lisp")  # type: ignore[arg-type]
