"""CLEVR shapes and materials built in code (bmesh, modifiers, shader nodes) and cached.

Shapes. Each is the unit primitive that ``bpy.ops.mesh.primitive_*_add`` makes with the
arguments of :data:`scenes.universe.PRIMITIVES` (same bmesh operators, so identical
vertices and faces) with the modifiers of :data:`scenes.universe.MODIFIERS` evaluated by
Blender itself and baked into the cached mesh: the ground-truth ``bpy_program`` adds the
same modifiers to its objects, so both render pixel-identically, and the trusted builder
does not pay for a bevel or a subdivision on every request.

Materials. CLEVR's ``Rubber`` and ``MyMetal`` node groups (``data/materials/*.blend``, as
Blender 5.0 loads them), rebuilt node for node in each cached material, with CLEVR's
viewport values for Workbench. Where Blender 5.0 needs a choice, it is made as its own
versioning of the 2.78 files makes it (see :func:`_rubber` and :func:`_metal`).

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

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

# isort: off
import bpy  # first: importing bpy is what makes bmesh importable
import bmesh
# isort: on

from ..scenes import universe
from .rna_snapshot import Snapshot, matches, snapshot

# Module state, for now: these are datablocks of the process's one bpy.data, kept (fake
# users) across rebuilds and across a BuiltFrame takeover, which must inherit them; a
# stale frame's service refuses before it can reach them (``BuiltFrame.ensure_held``).
_MESHES: dict[str, bpy.types.Mesh] = {}
_MATERIALS: dict[tuple[str, str], bpy.types.Material] = {}
_MATERIAL_KEYS: dict[int, tuple[str, str]] = {}  # by session_uid: _MATERIALS reversed
# Meshes built by other modules, by their key, least recently used first.
_SHARED: OrderedDict[Hashable, bpy.types.Mesh] = OrderedDict()
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
class _Nodes:
    """Shorthand for building one node tree."""

    def __init__(self, tree: bpy.types.ShaderNodeTree) -> None:
        self.tree = tree

    def add(self, kind: str, **inputs: Any) -> Any:
        node: Any = self.tree.nodes.new(kind)
        for name, value in inputs.items():
            if name in ("distribution", "operation", "convert_from", "convert_to", "vector_type"):
                setattr(node, name, value)
            else:
                node.inputs[name.replace("_", " ")].default_value = value
        return node

    def link(self, out: Any, node: Any, socket: str | int) -> None:
        self.tree.links.new(out, node.inputs[socket])


def _rubber(n: _Nodes, rgba: tuple[float, ...]) -> Any:
    """CLEVR's ``Rubber`` group with its defaults (IOR 1.2, roughness 0.35): a Fresnel(IOR +
    0.2)-weighted mix of Lambert diffuse and Velvet (σ 0.6) under a Fresnel(IOR)-weighted
    Beckmann glossy of colour 0.8. Blender 4.0 replaced Velvet by the Sheen BSDF's
    ``ASHIKHMIN`` (the same model) and the Glossy node by the Anisotropic one (anisotropy 0),
    and since 2.8 glossy roughness is squared, so the 2.78 roughness 0.35 becomes
    sqrt(0.35): what Blender's versioning of Rubber.blend makes, node for node."""
    ior = 1.2
    diffuse = n.add("ShaderNodeBsdfDiffuse", Color=rgba, Roughness=0.0)
    velvet = n.add("ShaderNodeBsdfSheen", distribution="ASHIKHMIN", Color=rgba, Roughness=0.6)
    inner = n.add("ShaderNodeMixShader")
    n.link(n.add("ShaderNodeFresnel", IOR=ior + 0.2).outputs["Fac"], inner, 0)
    n.link(diffuse.outputs["BSDF"], inner, 1)
    n.link(velvet.outputs["BSDF"], inner, 2)
    glossy = n.add(
        "ShaderNodeBsdfAnisotropic",
        distribution="BECKMANN",
        Color=(0.8, 0.8, 0.8, 1.0),
        Roughness=math.sqrt(0.35),
        Anisotropy=0.0,
    )
    outer = n.add("ShaderNodeMixShader")
    n.link(n.add("ShaderNodeFresnel", IOR=ior).outputs["Fac"], outer, 0)
    n.link(inner.outputs["Shader"], outer, 1)
    n.link(glossy.outputs["BSDF"], outer, 2)
    return outer.outputs["Shader"]


def _metal(n: _Nodes, rgba: tuple[float, ...]) -> Any:
    """CLEVR's ``MyMetal`` group: 0.4 x anisotropic GGX (2.78 roughness 0.2) + 0.6 x
    anisotropic GGX (0.01), anisotropy 0.25, no Fresnel (its Fresnel node is unconnected).

    Not exact: Blender 4.0 re-parameterised anisotropy (a 2.78 file keeps the number 0.25,
    which 5.0 reads as a slightly different stretch), and with no tangent given, Cycles
    uses the radial tangent about the object's z axis from the *generated* coordinates,
    which depend on the mesh's texture space. The tangent here is that radial direction
    from the object coordinates, z x p in world space: the same for CLEVR's meshes (their
    texture space is a centred cube of side ~2) and the same whether the mesh was baked or
    carries its modifiers, which keeps the bpy program pixel-identical to the build."""
    coords = n.add("ShaderNodeTexCoord")
    radial = n.add("ShaderNodeVectorMath", operation="CROSS_PRODUCT")
    radial.inputs[0].default_value = (0.0, 0.0, 1.0)
    n.link(coords.outputs["Object"], radial, 1)
    world = n.add(
        "ShaderNodeVectorTransform", vector_type="VECTOR", convert_from="OBJECT",
        convert_to="WORLD",
    )  # fmt: skip
    n.link(radial.outputs["Vector"], world, "Vector")
    lobes = []
    for roughness in (math.sqrt(0.2), math.sqrt(0.01)):
        lobe = n.add(
            "ShaderNodeBsdfAnisotropic",
            distribution="GGX",
            Color=rgba,
            Roughness=roughness,
            Anisotropy=0.25,
        )
        n.link(world.outputs["Vector"], lobe, "Tangent")
        lobes.append(lobe)
    mix = n.add("ShaderNodeMixShader", Fac=0.6)
    n.link(lobes[0].outputs["BSDF"], mix, 1)
    n.link(lobes[1].outputs["BSDF"], mix, 2)
    return mix.outputs["Shader"]


_SURFACES: Mapping[str, Callable[[_Nodes, tuple[float, ...]], Any]] = {
    "rubber": _rubber,
    "metal": _metal,
}


def setup_material(mat: bpy.types.Material, material: str, color: str) -> None:
    """Give ``mat`` CLEVR's node tree for ``material`` in ``color`` (replacing its nodes)
    and CLEVR's viewport values (what Workbench renders)."""
    try:
        surface = _SURFACES[material]
        viewport = universe.MATERIAL_VIEWPORT[material]
        rgba = universe.color_rgba(color)
    except KeyError as exc:
        raise ValueError(f"unknown material/color {material!r}/{color!r}") from exc
    mat.diffuse_color = rgba
    mat.metallic = viewport["metallic"]
    mat.roughness = viewport["roughness"]
    tree = cast(bpy.types.ShaderNodeTree, mat.node_tree)  # always there since Blender 5.0
    tree.nodes.clear()
    nodes = _Nodes(tree)
    output = nodes.add("ShaderNodeOutputMaterial")
    nodes.link(surface(nodes, rgba), output, "Surface")


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
    setup_material(mat, kind, color)
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
    uid = mesh.session_uid
    for key, idb in _SHARED.items():
        if alive(idb) and idb.session_uid == uid:
            return key
    return None


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
    unused = [key for key, mesh in _SHARED.items() if mesh.users <= 1]
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
    return idb.session_uid in _MADE and alive(idb)


def in_use() -> list[bpy.types.ID]:
    """The cached datablocks that some datablock points at: all that a render can use.

    By Blender's own map of ID pointers (``bpy.data.user_map``), which lists every
    pointer, also those that hold no user count."""
    return [idb for idb, users in bpy.data.user_map(subset=cached()).items() if users]


def edited(idbs: Iterable[bpy.types.ID]) -> list[bpy.types.ID]:
    """The cached datablocks among ``idbs`` that differ from their snapshot in any
    property."""
    return [i for i in idbs if is_asset(i) and not matches(_MADE[i.session_uid].snapshot, i)]


def verify_in_use() -> list[str]:
    """Rebuild every cached datablock a render can use that differs from its snapshot,
    in place of it in every user (objects, slots, nodes); returns the names of those
    rebuilt. Called before every render: nothing rendered uses an edited asset. Those
    made or compared since the last :func:`distrust` are not compared again."""
    names: list[str] = []
    if _TRUSTED.issuperset(_MADE):  # all made or compared since: no need to list users
        return names
    used = [idb for idb in in_use() if idb.session_uid not in _TRUSTED]
    uids = [idb.session_uid for idb in used]
    for old in edited(used):
        names.append(old.name)
        made = _MADE.pop(old.session_uid)
        for cache in _caches():
            for key in [k for k, idb in cache.items() if idb.session_uid == old.session_uid]:
                del cache[key]
        old.name = f"{old.name}_edited"  # frees the name for its replacement
        old.user_remap(made.remake())
        bpy.data.batch_remove([old])
    _TRUSTED.update(uids)  # as made (an edited one's uid is gone: trim forgets it)
    return names


def _forget(doomed: list[bpy.types.ID]) -> None:
    for idb in doomed:
        _MADE.pop(idb.session_uid, None)
    if doomed:
        bpy.data.batch_remove(doomed)
