"""Scene -> the agent script that rebuilds it, in the CLEVR DSL or in plain bpy.

These are the ground-truth programs (oracle agent, supervised warm-start data). Both
dialects use exactly the geometry of :mod:`universe` and CLEVR's shared materials (the
sandbox's ``clevr_material``), which the trusted builder (``addon.build``) uses too, so
they render pixel-identically to it. Floats are written with ``repr`` so nothing is lost
to rounding.
"""

from __future__ import annotations

from typing import Literal

from . import universe
from .model import Scene, SceneObject

Dialect = Literal["dsl", "bpy"]
DIALECTS: tuple[str, ...] = ("dsl", "bpy")


def dsl_program(scene: Scene) -> str:
    """One ``add_object`` call per object (the sandbox provides ``add_object``)."""
    lines = [
        f"# CLEVR scene with {len(scene)} objects; x, y in metres, rotation in radians.",
    ]
    for o in scene.objects:
        lines.append(
            f"add_object(shape={o.shape!r}, size={o.size!r}, material={o.material!r}, "
            f"color={o.color!r}, x={o.x!r}, y={o.y!r}, rotation={o.rotation!r})"
        )
    return "\n".join(lines) + "\n"


def primitive_line(shape: str) -> str:
    """The operator call that makes ``shape``'s unit primitive at the origin. The pose is
    set on the object afterwards: an operator given a rotation bakes it into the mesh and
    back out again, a float apart (enough to flip a pixel now and then)."""
    op, args = universe.PRIMITIVES[shape]
    return f"bpy.ops.mesh.{op}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


def shape_lines(shape: str) -> list[str]:
    """The lines after ``obj = ...`` that give ``shape`` its modifiers and shading."""
    lines = []
    for kind, settings in universe.MODIFIERS[shape]:
        lines.append(f"mod = obj.modifiers.new(name={kind.title()!r}, type={kind!r})")
        lines += [f"mod.{k} = {v!r}" for k, v in settings.items()]
    if shape in universe.SMOOTH_SHAPES:
        lines.append("bpy.ops.object.shade_smooth()")
    return lines


def _bpy_object(i: int, o: SceneObject) -> list[str]:
    r = o.radius
    lines = [
        f"# {i}: {o.size} {o.color} {o.material} {o.shape}",
        primitive_line(o.shape),
        "obj = bpy.context.object",
        f"obj.name = {f'{o.shape}_{i}'!r}",
        f"obj.location = ({o.x!r}, {o.y!r}, {o.z!r})",
        f"obj.rotation_euler = (0.0, 0.0, {o.rotation!r})",
        f"obj.scale = ({r!r}, {r!r}, {r!r})",
        *shape_lines(o.shape),
    ]
    lines += [f"obj.data.materials.append(clevr_material({o.material!r}, {o.color!r}))", ""]
    return lines


def bpy_program(scene: Scene) -> str:
    """Primitive operators, modifiers and CLEVR's shared materials, as an LLM would write
    them (``clevr_material`` is a sandbox global, like the DSL's ``add_object``)."""
    lines = ["import bpy", ""]
    for i, o in enumerate(scene.objects):
        lines += _bpy_object(i, o)
    return "\n".join(lines)


def write_program(scene: Scene, dialect: Dialect = "dsl") -> str:
    if dialect == "dsl":
        return dsl_program(scene)
    if dialect == "bpy":
        return bpy_program(scene)
    raise ValueError(f"dialect must be one of {DIALECTS}, got {dialect!r}")
