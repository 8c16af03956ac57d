"""Scene -> the agent script that rebuilds it, in the CLEVR DSL or in plain bpy.

These are the ground-truth programs (oracle agent, supervised warm-start data). Both
dialects use exactly the geometry and material parameters of :mod:`universe`, which the
trusted builder (``addon.build``) uses too, so they render pixel-identically to it.
Floats are written with ``repr`` so nothing is lost to rounding.
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


def _bpy_object(i: int, o: SceneObject) -> list[str]:
    r = o.radius
    loc = f"({o.x!r}, {o.y!r}, {o.z!r})"
    rot = f"(0.0, 0.0, {o.rotation!r})"
    if o.shape == "cube":
        op = f"bpy.ops.mesh.primitive_cube_add(size=2.0, location={loc}, rotation={rot})"
    elif o.shape == "sphere":
        op = (
            f"bpy.ops.mesh.primitive_uv_sphere_add(segments={universe.SPHERE_SEGMENTS}, "
            f"ring_count={universe.SPHERE_RINGS}, radius=1.0, location={loc}, rotation={rot})"
        )
    else:
        op = (
            f"bpy.ops.mesh.primitive_cylinder_add(vertices={universe.CYLINDER_VERTICES}, "
            f"radius=1.0, depth=2.0, location={loc}, rotation={rot})"
        )
    pbr = universe.MATERIAL_PBR[o.material]
    rgba = universe.color_rgba(o.color)
    lines = [
        f"# {i}: {o.size} {o.color} {o.material} {o.shape}",
        op,
        "obj = bpy.context.object",
        f"obj.name = {f'{o.shape}_{i}'!r}",
        f"obj.scale = ({r!r}, {r!r}, {r!r})",
    ]
    if o.shape == "cube":
        lines += [
            'bevel = obj.modifiers.new(name="Bevel", type="BEVEL")',
            f"bevel.width = {universe.BEVEL_WIDTH!r}",
            f"bevel.segments = {universe.BEVEL_SEGMENTS!r}",
        ]
    if o.shape in universe.SMOOTH_SHAPES:
        lines.append("bpy.ops.object.shade_smooth()")
    lines += [
        f"mat = bpy.data.materials.new(name={f'{o.color}_{o.material}'!r})",
        f"mat.diffuse_color = {rgba!r}",
        f"mat.metallic = {pbr['metallic']!r}",
        f"mat.roughness = {pbr['roughness']!r}",
        'bsdf = mat.node_tree.nodes["Principled BSDF"]',
        f'bsdf.inputs["Base Color"].default_value = {rgba!r}',
        f'bsdf.inputs["Metallic"].default_value = {pbr["metallic"]!r}',
        f'bsdf.inputs["Roughness"].default_value = {pbr["roughness"]!r}',
        "obj.data.materials.append(mat)",
        "",
    ]
    return lines


def bpy_program(scene: Scene) -> str:
    """Primitive operators and Principled materials, as an LLM would write them."""
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
