"""CLEVR shapes and materials built in code (bmesh, Principled BSDF) and cached.

The parameters are exactly those of :mod:`scenes.universe` and of the ground-truth
``bpy_program``: the meshes are the unit primitives that ``bpy.ops.mesh.primitive_*_add``
makes (same bmesh operators, so identical vertices and faces), and each material is made
with ``bpy.data.materials.new`` and the same five values. That is what lets the programs
render pixel-identically to :func:`addon.build.build`.

Other modules share meshes through the same cache (:func:`shared_mesh`: the sandbox's
primitive operators), at most :data:`SHARED_CAPACITY` of them kept once no object uses
them.

Cached datablocks belong to the frame: agents can read them but never write them (the
sandbox's proxies check ownership by ``session_uid``, which Blender never reuses), and
every step's integrity check calls :func:`drop_modified`, which compares each with the
generic snapshot (:mod:`.rna_snapshot`) taken when it was made, so that an edit that got
through anyway cannot reach a later request or target render.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, cast

import bmesh
import bpy

from ..scenes import universe
from . import compat
from .rna_snapshot import Snapshot, matches, snapshot

_MESHES: dict[str, bpy.types.Mesh] = {}
_MATERIALS: dict[tuple[str, str], bpy.types.Material] = {}
# Meshes built by other modules, by their key, least recently used first.
_SHARED: OrderedDict[Hashable, bpy.types.Mesh] = OrderedDict()
SHARED_CAPACITY = 8  # each one costs ~0.1 ms a step to verify
# Snapshots taken when an asset was made, by session_uid; compared in drop_modified().
# Its keys are the session_uid of every cached datablock.
_SNAPSHOTS: dict[int, Snapshot] = {}


def alive(idb: bpy.types.ID) -> bool:
    """False once Blender freed the datablock (removal or factory reset)."""
    try:
        idb.as_pointer()
    except ReferenceError:
        return False
    return True


def _remember(idb: bpy.types.ID) -> None:
    """Register a finished cached datablock: kept between requests, verified each reset.

    Every cached datablock (meshes, materials, and any node group they use) goes through
    here once it is complete."""
    idb.use_fake_user = True  # survives with no users between requests
    _SNAPSHOTS[idb.session_uid] = snapshot(idb)


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
    _MESHES[shape] = mesh
    _remember(mesh)
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
    _MATERIALS[key] = mat
    _remember(mat)
    return mat


def shared_mesh(key: Hashable, build: Callable[[], bpy.types.Mesh]) -> bpy.types.Mesh:
    """The shared mesh cached under ``key``, made by ``build`` on first use (or after it
    was dropped) and from then on kept, verified and read-only like the CLEVR assets."""
    mesh = _SHARED.get(key)
    if mesh is not None and alive(mesh):
        _SHARED.move_to_end(key)
        return mesh
    mesh = build()
    _SHARED[key] = mesh
    _remember(mesh)
    return mesh


def shared_key(mesh: bpy.types.Mesh) -> Hashable | None:
    """The key ``mesh`` is cached under by :func:`shared_mesh`, or None."""
    uid = mesh.session_uid
    for key, idb in _SHARED.items():
        if alive(idb) and idb.session_uid == uid:
            return key
    return None


def trim() -> None:
    """Delete the least recently used shared meshes beyond :data:`SHARED_CAPACITY` that
    no object uses (their only user is the fake one that keeps them)."""
    unused = [key for key, mesh in _SHARED.items() if not alive(mesh) or mesh.users <= 1]
    extra = len(_SHARED) - SHARED_CAPACITY
    doomed = [_SHARED.pop(key) for key in unused[: max(extra, 0)]]
    _forget([idb for idb in doomed if alive(idb)])


def _caches() -> tuple[dict[Any, Any], ...]:
    return (_MESHES, _MATERIALS, _SHARED)


def cached() -> list[bpy.types.ID]:
    """Every live cached datablock."""
    return [idb for cache in _caches() for idb in cache.values() if alive(idb)]


def is_asset(idb: bpy.types.ID) -> bool:
    """True if ``idb`` is one of the cached datablocks."""
    return idb.session_uid in _SNAPSHOTS and alive(idb)


def drop_modified() -> list[str]:
    """Forget (and delete) cached assets that differ from their snapshot in any property.

    Returns their names. They are rebuilt on the next request for them.
    """
    dropped: list[bpy.types.ID] = []
    for cache in _caches():
        for key, idb in list(cache.items()):
            if not alive(idb):
                del cache[key]
            elif not matches(_SNAPSHOTS[idb.session_uid], idb):
                del cache[key]
                dropped.append(idb)
    names = [idb.name for idb in dropped]
    _forget(dropped)
    for uid in _SNAPSHOTS.keys() - {idb.session_uid for idb in cached()}:
        del _SNAPSHOTS[uid]  # freed by Blender (a factory reset)
    return names


def _forget(doomed: list[bpy.types.ID]) -> None:
    for idb in doomed:
        _SNAPSHOTS.pop(idb.session_uid, None)
    if doomed:
        bpy.data.batch_remove(doomed)
