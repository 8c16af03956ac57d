"""CLEVR shapes and materials built in code (bmesh, Principled BSDF) and cached.

The parameters are exactly those of :mod:`scenes.universe` and of the ground-truth
``bpy_program``: the meshes are the unit primitives that ``bpy.ops.mesh.primitive_*_add``
makes (same bmesh operators, so identical vertices and faces), and each material is made
with ``bpy.data.materials.new`` and the same five values. That is what lets the programs
render pixel-identically to :func:`addon.build.build`.

Cached datablocks belong to the frame: ``addon.frame.reset`` keeps them and calls
:func:`drop_modified` so that an agent that edited a cached material or mesh cannot leak
the edit into the next request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import bmesh
import bpy
import numpy as np

from ..scenes import universe
from . import compat

_MESHES: dict[str, bpy.types.Mesh] = {}
_MATERIALS: dict[tuple[str, str], bpy.types.Material] = {}
# Fingerprints taken when an asset was made; compared in drop_modified().
_PRINTS: dict[int, tuple] = {}


def alive(idb: bpy.types.ID) -> bool:
    """False once Blender freed the datablock (removal or factory reset)."""
    try:
        idb.as_pointer()
    except ReferenceError:
        return False
    return True


def _build_bmesh(shape: str) -> bmesh.types.BMesh:
    bm = bmesh.new()
    bm.loops.layers.uv.new("UVMap")  # the primitive operators make one too
    if shape == "cube":
        bmesh.ops.create_cube(bm, size=2.0, calc_uvs=True)
    elif shape == "sphere":
        bmesh.ops.create_uvsphere(
            bm,
            u_segments=universe.SPHERE_SEGMENTS,
            v_segments=universe.SPHERE_RINGS,
            radius=1.0,
            calc_uvs=True,
        )
    elif shape == "cylinder":
        bmesh.ops.create_cone(
            bm,
            cap_ends=True,
            cap_tris=False,
            segments=universe.CYLINDER_VERTICES,
            radius1=1.0,
            radius2=1.0,
            depth=2.0,
            calc_uvs=True,
        )
    else:
        bm.free()
        raise ValueError(f"shape must be one of {universe.SHAPES}, got {shape!r}")
    if shape in universe.SMOOTH_SHAPES:
        for face in bm.faces:
            face.smooth = True
    return bm


def _mesh_print(mesh: bpy.types.Mesh) -> tuple:
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    smooth = np.empty(len(mesh.polygons), dtype=bool)
    mesh.polygons.foreach_get("use_smooth", smooth)
    attributes = tuple(sorted(a.name for a in mesh.attributes))  # e.g. an added sharp_edge
    return (mesh.name, co.tobytes(), smooth.tobytes(), len(mesh.loops), attributes,
            tuple(m.name if m else None for m in mesh.materials))  # fmt: skip


def _material_print(mat: bpy.types.Material) -> tuple:
    bsdf = compat.principled_bsdf(mat)
    inputs = tuple(
        tuple(cast(bpy.types.NodeSocketColor, bsdf.inputs[name]).default_value)
        if name == "Base Color"
        else cast(bpy.types.NodeSocketFloat, bsdf.inputs[name]).default_value
        for name in ("Base Color", "Metallic", "Roughness")
    )
    tree = cast(bpy.types.ShaderNodeTree, mat.node_tree)  # principled_bsdf found it
    nodes = (len(tree.nodes), len(tree.links))
    return (mat.name, tuple(mat.diffuse_color), mat.metallic, mat.roughness, inputs, nodes)


def shape_mesh(shape: str) -> bpy.types.Mesh:
    """The unit mesh of ``shape`` (half-extent 1, centred), built once and reused.

    It has one empty material slot so that objects can link their material per object
    (``link='OBJECT'``) while sharing the mesh.
    """
    mesh = _MESHES.get(shape)
    if mesh is not None and alive(mesh):
        return mesh
    bm = _build_bmesh(shape)
    mesh = bpy.data.meshes.new(f"derender_{shape}")
    bm.to_mesh(mesh)
    bm.free()
    mesh.materials.append(None)
    mesh.use_fake_user = True  # survives with no users between requests
    _MESHES[shape] = mesh
    _PRINTS[mesh.as_pointer()] = _mesh_print(mesh)
    return mesh


def setup_material(mat: bpy.types.Material, material: str, color: str) -> None:
    """Set the five values ``bpy_program`` sets: Workbench's and the Principled BSDF's."""
    try:
        pbr = universe.MATERIAL_PBR[material]
        rgba = universe.color_rgba(color)
    except KeyError as exc:
        raise ValueError(f"unknown material/color {material!r}/{color!r}") from exc
    mat.diffuse_color = rgba
    mat.metallic = pbr["metallic"]
    mat.roughness = pbr["roughness"]
    bsdf = compat.principled_bsdf(mat)
    cast(bpy.types.NodeSocketColor, bsdf.inputs["Base Color"]).default_value = rgba
    cast(bpy.types.NodeSocketFloat, bsdf.inputs["Metallic"]).default_value = pbr["metallic"]
    cast(bpy.types.NodeSocketFloat, bsdf.inputs["Roughness"]).default_value = pbr["roughness"]


def material(material: str, color: str) -> bpy.types.Material:
    """The Principled material for (material, color), built once and reused."""
    key = (material, color)
    mat = _MATERIALS.get(key)
    if mat is not None and alive(mat):
        return mat
    if material not in universe.MATERIALS or color not in universe.COLORS:
        raise ValueError(
            f"material must be in {universe.MATERIALS} and color in {tuple(universe.COLORS)}, "
            f"got {material!r}, {color!r}"
        )
    mat = bpy.data.materials.new(f"derender_{color}_{material}")
    setup_material(mat, material, color)
    mat.use_fake_user = True
    _MATERIALS[key] = mat
    _PRINTS[mat.as_pointer()] = _material_print(mat)
    return mat


def cached() -> list[bpy.types.ID]:
    """Every live cached datablock."""
    return [idb for idb in (*_MESHES.values(), *_MATERIALS.values()) if alive(idb)]


def is_asset(idb: bpy.types.ID) -> bool:
    """True if ``idb`` is one of the cached meshes or materials."""
    ptr = idb.as_pointer()
    return any(ptr == a.as_pointer() for a in cached())


def drop_modified() -> list[str]:
    """Forget (and delete) cached assets that changed since they were made.

    Returns their names. They are rebuilt on the next request for them.
    """
    dropped: list[bpy.types.ID] = []
    caches: tuple[tuple[dict[Any, Any], Callable[[Any], tuple]], ...] = (
        (_MESHES, _mesh_print),
        (_MATERIALS, _material_print),
    )
    for cache, printer in caches:
        for key, idb in list(cache.items()):
            if not alive(idb):
                del cache[key]
                continue
            try:
                unchanged = printer(idb) == _PRINTS.get(idb.as_pointer())
            except (RuntimeError, KeyError, AttributeError):
                unchanged = False  # e.g. the BSDF node was deleted
            if not unchanged:
                del cache[key]
                dropped.append(idb)
    names = [idb.name for idb in dropped]
    for idb in dropped:
        _PRINTS.pop(idb.as_pointer(), None)
    if dropped:
        bpy.data.batch_remove(dropped)
    return names
