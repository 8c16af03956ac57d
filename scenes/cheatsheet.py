"""The API cheat-sheet sent in ``info``: a short text for an agent's prompt.

It describes the CLEVR DSL and the bpy subset that the ground-truth programs
(:mod:`derender.scenes.programs`) use, which the sandbox must allow. Numbers come from
:mod:`derender.scenes.universe`, so the text cannot drift from the universe. The prompt
builder reuses :func:`cheatsheet`.
"""

from __future__ import annotations

from . import universe
from .programs import primitive_line, shape_lines

# Runs as it stands in the sandbox (a test steps it), so the prompt never shows dead code.
EXAMPLE_DSL = """\
add_object(shape='cube', size='large', material='metal', color='red', x=1.2, y=-0.5,
           rotation=0.3)
add_object(shape='sphere', size='small', material='rubber', color='cyan',
           x=-1.0, y=1.5)
"""


def cheatsheet() -> str:
    """Plain text, about 60 lines: the task, the DSL, the bpy subset, the rules."""
    u = universe
    sizes = ", ".join(f"{k!r} (radius {v})" for k, v in u.SIZES.items())
    shapes = "\n".join(
        "\n".join(
            [f"# {shape}:", primitive_line(shape), "obj = bpy.context.object",
             "obj.location = (x, y, z); obj.rotation_euler = (0, 0, r); obj.scale = (s, s, s)",
             *shape_lines(shape)]
        )
        for shape in u.SHAPES
    )  # fmt: skip
    return f"""\
# derender: rebuild the pictured CLEVR scene as a Python program.
The camera, lights, ground, world and render settings are fixed; do not touch them.
Your program only adds objects. Ground plane z = 0; x, y in metres within
[-{u.PLACEMENT_BOUNDS}, {u.PLACEMENT_BOUNDS}]; rotation in radians about +z.
Scenes have {u.MIN_OBJECTS}..{u.MAX_OBJECTS} objects.

## Vocabulary
shape: {", ".join(repr(s) for s in u.SHAPES)}
size: {sizes}; every shape's half-extent is its size, so z = size rests on the ground
material: {", ".join(repr(m) for m in u.MATERIALS)}
color: {", ".join(repr(c) for c in u.COLORS)}

## CLEVR DSL (preferred; no import needed)
add_object(shape=..., size=..., material=..., color=..., x=..., y=..., rotation=0.0)
  One call per object; the object rests on the ground. clear() removes your objects.
  Constants: SHAPES, SIZES, MATERIALS, COLORS, PLACEMENT_BOUNDS, MIN_DIST, MARGIN.
Example:
{EXAMPLE_DSL}
## bpy subset (for full control); s = the size, z = s rests on the ground
import bpy
{shapes}
obj.data.materials.append(clevr_material(material, color))  # CLEVR's own, read-only
Your own materials: mat = bpy.data.materials.new(name=...);
bsdf = mat.node_tree.nodes["Principled BSDF"]
bsdf.inputs["Base Color"].default_value = (r, g, b, 1.0)   # linear = sRGB bytes / 255
bsdf.inputs["Metallic"].default_value = ...; bsdf.inputs["Roughness"].default_value = ...
Modifiers: BEVEL, SUBSURF, SOLIDIFY. clevr_material is a global, like add_object.

## Rules
Imports: only bpy, math, random (seeded per request) and mathutils. No file, network or
OS access; no camera, light, world or render-settings edits. Time, object and vertex
budgets apply. print() output is returned to you.
"""
