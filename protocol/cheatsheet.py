"""The API cheat-sheet sent in ``info``: a short text for an agent's prompt.

It describes the CLEVR DSL and the bpy subset that the ground-truth programs
(:mod:`derender.scenes.programs`) use, which the sandbox must allow. Numbers come from
:mod:`derender.scenes.universe`, so the text cannot drift from the universe. The prompt
builder reuses :func:`cheatsheet`.
"""

from __future__ import annotations

from ..scenes import universe

# Runs as it stands in the sandbox (a test steps it), so the prompt never shows dead code.
EXAMPLE_DSL = """\
add_object(shape='cube', size='large', material='metal', color='red', x=1.2, y=-0.5,
           rotation=0.3)
add_object(shape='sphere', size='small', material='rubber', color='cyan',
           x=-1.0, y=1.5)
"""


def cheatsheet() -> str:
    """Plain text, about 40 lines: the task, the DSL, the bpy subset, the rules."""
    u = universe
    sizes = ", ".join(f"{k!r} (radius {v})" for k, v in u.SIZES.items())
    pbr = "; ".join(
        f"{m}: metallic {p['metallic']}, roughness {p['roughness']}"
        for m, p in u.MATERIAL_PBR.items()
    )
    return f"""\
# derender: rebuild the pictured CLEVR scene as a Python program.
The camera, lights, ground, world and render settings are fixed; do not touch them.
Your program only adds objects. Ground plane z = 0; x, y in metres within
[-{u.PLACEMENT_BOUNDS}, {u.PLACEMENT_BOUNDS}]; rotation in radians about +z.
Scenes have {u.MIN_OBJECTS}..{u.MAX_OBJECTS} objects.

## Vocabulary
shape: {", ".join(repr(s) for s in u.SHAPES)}
size: {sizes}; a cube's half-edge is its size / sqrt(2)
material: {", ".join(repr(m) for m in u.MATERIALS)}
color: {", ".join(repr(c) for c in u.COLORS)}

## CLEVR DSL (preferred; no import needed)
add_object(shape=..., size=..., material=..., color=..., x=..., y=..., rotation=0.0)
  One call per object; the object rests on the ground. clear() removes your objects.
  Constants: SHAPES, SIZES, MATERIALS, COLORS, PLACEMENT_BOUNDS, MIN_DIST, MARGIN.
Example:
{EXAMPLE_DSL}
## bpy subset (for full control)
import bpy
bpy.ops.mesh.primitive_cube_add(size=2.0, location=(x, y, z), rotation=(0, 0, r))
bpy.ops.mesh.primitive_uv_sphere_add(segments={u.SPHERE_SEGMENTS}, \
ring_count={u.SPHERE_RINGS}, radius=1.0, location=..., rotation=...)
bpy.ops.mesh.primitive_cylinder_add(vertices={u.CYLINDER_VERTICES}, radius=1.0, depth=2.0, \
location=..., rotation=...)
obj = bpy.context.object; obj.name = ...; obj.scale = (r, r, r)   # z = r rests on ground
bevel = obj.modifiers.new(name="Bevel", type="BEVEL"); bevel.width = {u.BEVEL_WIDTH}; \
bevel.segments = {u.BEVEL_SEGMENTS}  # cubes
bpy.ops.object.shade_smooth()   # spheres and cylinders
mat = bpy.data.materials.new(name=...); mat.diffuse_color = (r, g, b, 1.0)
bsdf = mat.node_tree.nodes["Principled BSDF"]
bsdf.inputs["Base Color"].default_value = (r, g, b, 1.0)   # linear = sRGB bytes / 255
bsdf.inputs["Metallic"].default_value = ...; bsdf.inputs["Roughness"].default_value = ...
obj.data.materials.append(mat)
Materials: {pbr}.

## Rules
Imports: only bpy, math, random (seeded per request) and mathutils. No file, network or
OS access; no camera, light, world or render-settings edits. Time, object and vertex
budgets apply. print() output is returned to you.
"""
