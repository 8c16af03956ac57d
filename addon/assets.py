"""CLEVR shapes and materials built in code (bmesh, modifiers, shader nodes) and cached.

Shapes. Each is the unit primitive that ``bpy.ops.mesh.primitive_*_add`` makes with the
arguments of :data:`scenes.universe.PRIMITIVES` (same bmesh operators, so identical
vertices and faces) with the modifiers of :data:`scenes.universe.MODIFIERS` evaluated by
Blender itself and baked into the cached mesh: the ground-truth ``bpy_program`` adds the
same modifiers to its objects, so both render pixel-identically, and the trusted builder
does not pay for a bevel or a subdivision on every request.

Materials. As CLEVR makes them: one node group per kind (CLEVR's ``Rubber`` and
``MyMetal``, rebuilt node for node by :mod:`.material_nodes`), cached like the rest, and one
material per (kind, colour) whose group node holds the colour, with CLEVR's viewport
values for Workbench. A render that uses eight materials compares two surfaces and eight
two-node trees, not eight surfaces.

Other modules share meshes through the same cache (:func:`shared_mesh`: the sandbox's
primitive operators, :mod:`.evaluated`'s modifier results), at most
:data:`SHARED_CAPACITY` of them kept once no object uses them.

Cached datablocks belong to the frame: agents can read them but never write them (the
sandbox's proxies check ownership by ``session_uid``, which Blender never reuses). An
edit that got through anyway (a hole in the proxies) must never reach a render, so before
every render :func:`verify_in_use` compares each cached datablock the render can use (any
datablock points at it) with the generic snapshot (:mod:`.rna_snapshot`) taken when it was
made, and rebuilds an edited one in place of it in every user. Only those: an asset nothing
uses cannot change a render (comparing all after every step cost more than the rest of the
step); an edit to an unused one is found when a render uses it (the worker then asks to be
replaced). Each is compared once after agent code ran (:func:`distrust`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from typing import Any, cast

# isort: off
import bpy  # first: importing bpy is what makes bmesh importable
import bmesh
# isort: on

from ..scenes import universe
from . import material_nodes
from .rna_snapshot import Snapshot, matches, snapshot

# Module state, for now: these are datablocks of the process's one bpy.data, kept (fake
# users) across rebuilds and across a BuiltFrame takeover, which must inherit them; a
# stale frame's service refuses before it can reach them (``BuiltFrame.ensure_held``).
_MESHES: dict[str, bpy.types.Mesh] = {}
_MATERIALS: dict[tuple[str, str], bpy.types.Material] = {}
_MATERIAL_KEYS: dict[int, tuple[str, str]] = {}  # by session_uid: _MATERIALS reversed
_GROUPS: dict[str, bpy.types.ShaderNodeTree] = {}  # CLEVR's surface per material kind
# Meshes built by other modules, by their key, least recently used first.
_SHARED: OrderedDict[Hashable, bpy.types.Mesh] = OrderedDict()
_SHARED_KEYS: dict[int, Hashable] = {}  # by session_uid: _SHARED reversed
SHARED_CAPACITY = 16  # kept with no users, for the next script that makes the same one


@dataclass(frozen=True)
class _Made:
    """How a cached datablock was made: its snapshot then, and how to make it again."""

    snapshot: Snapshot
    remake: Callable[[], bpy.types.ID]  # a new one, cached in place of a dropped entry


# Every cached datablock, by session_uid.
_MADE: dict[int, _Made] = {}
_TRUSTED: set[int] = set()  # made, or found as made, since the last distrust()


def alive(idb: bpy.types.ID) -> bool:
    """False once Blender freed the datablock (removal or factory reset)."""
    try:
        idb.as_pointer()
    except ReferenceError:
        return False
    return True


def _remember(idb: bpy.types.ID, remake: Callable[[], bpy.types.ID]) -> None:
    """Register a finished cached datablock: kept between requests, verified before a
    render that uses it (once after each :func:`distrust`; as made until then), remade by
    ``remake`` (once its cache entry is gone) if edited.

    Every cached datablock (meshes, materials, and any node group they use) goes through
    here once it is complete."""
    idb.use_fake_user = True  # survives with no users between requests
    _MADE[idb.session_uid] = _Made(snapshot(idb), remake)
    _TRUSTED.add(idb.session_uid)


def distrust() -> None:
    """Code other than derender's may have edited any cached datablock (an agent script
    ran, or a person in the GUI): from now on each render compares those it uses again
    (:func:`verify_in_use`), once each until the next call."""
    _TRUSTED.clear()


def _primitive_bmesh(shape: str) -> bmesh.types.BMesh:
    """The mesh ``bpy.ops.mesh.<PRIMITIVES[shape]>`` makes, by the operator's own bmesh op."""
    try:
        _op, args = universe.PRIMITIVES[shape]
    except KeyError:
        raise ValueError(f"shape must be one of {universe.SHAPES}, got {shape!r}") from None
    bm = bmesh.new()
    bm.loops.layers.uv.new("UVMap")  # the primitive operators make one too
    if shape == "cube":
        bmesh.ops.create_cube(bm, size=args["size"], calc_uvs=True)
    elif shape == "sphere":
        bmesh.ops.create_icosphere(
            bm, subdivisions=int(args["subdivisions"]), radius=args["radius"], calc_uvs=True
        )
    else:
        bmesh.ops.create_cone(
            bm,
            cap_ends=True,
            cap_tris=False,
            segments=int(args["vertices"]),
            radius1=args["radius"],
            radius2=args["radius"],
            depth=args["depth"],
            calc_uvs=True,
        )
    for face in bm.faces:
        face.smooth = shape in universe.SMOOTH_SHAPES
    return bm


def bake(mesh: bpy.types.Mesh, modifiers: Iterable[universe.Modifier], name: str) -> bpy.types.Mesh:
    """A new mesh ``name``: ``mesh`` with ``modifiers`` evaluated by Blender (``mesh`` is
    consumed). Evaluated in a private scene, so the current one is neither touched nor
    evaluated."""
    scene = bpy.data.scenes.new(f"{name}_bake")
    obj = bpy.data.objects.new(f"{name}_bake", mesh)
    try:
        scene.collection.objects.link(obj)
        for kind, settings in modifiers:
            mod = obj.modifiers.new(name=kind.title(), type=cast(Any, kind))
            for attr, value in settings.items():
                setattr(mod, attr, value)
        with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):
            depsgraph = bpy.context.evaluated_depsgraph_get()
            baked = bpy.data.meshes.new_from_object(obj.evaluated_get(depsgraph))
    finally:
        bpy.data.batch_remove([obj, scene, mesh])
    baked.name = name
    return baked


def shape_mesh(shape: str) -> bpy.types.Mesh:
    """The unit mesh of ``shape`` (half-extent 1, centred), modifiers applied, built once
    and reused.

    It has one empty material slot so that objects can link their material per object
    (``link='OBJECT'``) while sharing the mesh.
    """
    mesh = _MESHES.get(shape)
    if mesh is not None and alive(mesh):
        return mesh
    bm = _primitive_bmesh(shape)
    base = bpy.data.meshes.new(f"derender_{shape}_base")
    bm.to_mesh(base)
    bm.free()
    mesh = bake(base, universe.MODIFIERS[shape], f"derender_{shape}")
    mesh.materials.append(None)
    _MESHES[shape] = mesh
    _remember(mesh, lambda: shape_mesh(shape))
    return mesh


# -- materials ----------------------------------------------------------------------------
def _surface_group(kind: str) -> bpy.types.ShaderNodeTree:
    """CLEVR's node group of ``kind`` (:func:`.material_nodes.surface_group`), built once
    and reused by every material of that kind."""
    group = _GROUPS.get(kind)
    if group is not None and alive(group):
        return group
    group = material_nodes.surface_group(kind)
    _GROUPS[kind] = group
    _remember(group, lambda: _surface_group(kind))
    return group


def material(kind: str, color: str) -> bpy.types.Material:
    """The CLEVR material of ``kind`` (rubber, metal) in ``color``, built once and reused."""
    key = (kind, color)
    mat = _MATERIALS.get(key)
    if mat is not None and alive(mat):
        return mat
    if kind not in universe.MATERIALS or color not in universe.COLORS:
        raise ValueError(
            f"material must be in {universe.MATERIALS} and color in {tuple(universe.COLORS)}, "
            f"got {kind!r}, {color!r}"
        )
    mat = bpy.data.materials.new(f"derender_{color}_{kind}")
    material_nodes.setup_material(mat, kind, color, _surface_group(kind))
    _MATERIALS[key] = mat
    _MATERIAL_KEYS[mat.session_uid] = key
    _remember(mat, lambda: material(kind, color))
    return mat


def material_key(mat: bpy.types.Material) -> tuple[str, str] | None:
    """(material, color) if ``mat`` is one of the cached CLEVR materials, else None."""
    key = _MATERIAL_KEYS.get(mat.session_uid)  # an identity Blender never reuses
    cached_mat = _MATERIALS.get(key) if key else None
    return key if cached_mat and alive(cached_mat) and cached_mat == mat else None


def shared_mesh(key: Hashable, build: Callable[[], bpy.types.Mesh]) -> bpy.types.Mesh:
    """The shared mesh cached under ``key``, made by ``build`` on first use (or after it
    was dropped, or edited) and from then on kept, verified and read-only."""
    mesh = cached_shared_mesh(key)
    if mesh is not None:
        return mesh
    mesh = build()
    _SHARED[key] = mesh
    _SHARED_KEYS[mesh.session_uid] = key
    _remember(mesh, lambda: shared_mesh(key, build))
    return mesh


def cached_shared_mesh(key: Hashable) -> bpy.types.Mesh | None:
    """The shared mesh cached under ``key`` (now the most recently used), or None."""
    mesh = _SHARED.get(key)
    if mesh is None or not alive(mesh):
        return None
    _SHARED.move_to_end(key)
    return mesh


def shared_key(mesh: bpy.types.Mesh) -> Hashable | None:
    """The key ``mesh`` is cached under by :func:`shared_mesh`, or None."""
    uid = mesh.session_uid  # an identity Blender never reuses
    key = _SHARED_KEYS.get(uid)
    cached_mesh = _SHARED.get(key) if key is not None else None
    return key if cached_mesh is not None and alive(cached_mesh) and cached_mesh == mesh else None


def trim() -> None:
    """Delete the least recently used shared meshes beyond :data:`SHARED_CAPACITY` that
    no object uses (their only user is the fake one that keeps them), and forget cached
    datablocks Blender freed (a factory reset)."""
    for cache in _caches():
        for key in [key for key, idb in cache.items() if not alive(idb)]:
            del cache[key]
    for uid in _MADE.keys() - {idb.session_uid for idb in cached()}:
        del _MADE[uid]
    _TRUSTED.intersection_update(_MADE)
    for uid in _MATERIAL_KEYS.keys() - _MADE.keys():
        del _MATERIAL_KEYS[uid]
    for uid in _SHARED_KEYS.keys() - {mesh.session_uid for mesh in _SHARED.values()}:
        del _SHARED_KEYS[uid]
    unused = [key for key, mesh in _SHARED.items() if mesh.users <= 1]
    extra = len(_SHARED) - SHARED_CAPACITY
    doomed = [_SHARED.pop(key) for key in unused[: max(extra, 0)]]
    _forget([idb for idb in doomed if alive(idb)])


def _caches() -> tuple[dict[Any, Any], ...]:
    return (_MESHES, _MATERIALS, _GROUPS, _SHARED)


def cached() -> list[bpy.types.ID]:
    """Every live cached datablock."""
    return [idb for cache in _caches() for idb in cache.values() if alive(idb)]


def is_asset(idb: bpy.types.ID) -> bool:
    """True if ``idb`` is one of the cached datablocks."""
    return idb.session_uid in _MADE and alive(idb)


def in_use() -> list[bpy.types.ID]:
    """The cached datablocks that a datablock other than the cached ones points at, and
    those that one of these points at (a used material's group): all a render can use.

    By Blender's own map of ID pointers (``bpy.data.user_map``), which lists every
    pointer, also those that hold no user count."""
    users = {idb.session_uid: (idb, {u.session_uid for u in us})
             for idb, us in bpy.data.user_map(subset=cached()).items()}  # fmt: skip
    used = {uid for uid, (_, by) in users.items() if not by <= users.keys()}
    while more := {uid for uid, (_, by) in users.items() if uid not in used and by & used}:
        used |= more
    return [idb for uid, (idb, _) in users.items() if uid in used]


def edited(idbs: Iterable[bpy.types.ID]) -> list[bpy.types.ID]:
    """The cached datablocks among ``idbs`` that differ from their snapshot in any
    property."""
    return [i for i in idbs if is_asset(i) and not matches(_MADE[i.session_uid].snapshot, i)]


def verify_in_use() -> list[str]:
    """Rebuild every cached datablock a render can use that differs from its snapshot,
    in place of it in every user (objects, slots, nodes); returns the names of those
    rebuilt. Called before every render: nothing rendered uses an edited asset. Those
    made or compared since the last :func:`distrust` are not compared again.

    A replacement is remapped into every user, cached ones too (a material's group node),
    whose snapshots then name a datablock that is gone. So once one is edited, all are
    compared, the edited ones rebuilt, and every snapshot taken again."""
    names: list[str] = []
    if _TRUSTED.issuperset(_MADE):  # all made or compared since: no need to list users
        return names
    used = [idb for idb in in_use() if idb.session_uid not in _TRUSTED]
    if not edited(used):
        _TRUSTED.update(idb.session_uid for idb in used)
        return names
    for old in edited(cached()):
        names.append(old.name)
        made = _MADE.pop(old.session_uid)
        for cache in _caches():
            for key in [k for k, idb in cache.items() if idb.session_uid == old.session_uid]:
                del cache[key]
        old.name = f"{old.name}_edited"  # frees the name for its replacement
        old.user_remap(made.remake())
        bpy.data.batch_remove([old])
    for idb in cached():
        _MADE[idb.session_uid] = replace(_MADE[idb.session_uid], snapshot=snapshot(idb))
        _TRUSTED.add(idb.session_uid)
    return names


def _forget(doomed: list[bpy.types.ID]) -> None:
    for idb in doomed:
        _MADE.pop(idb.session_uid, None)
    if doomed:
        bpy.data.batch_remove(doomed)
