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

Cached datablocks belong to the frame: ``addon.frame.reset`` keeps them and calls
:func:`drop_modified` so that an agent that edited a cached material or mesh cannot leak
the edit into the next request.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import bmesh
import bpy
import numpy as np

from ..scenes import universe

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


def _mesh_print(mesh: bpy.types.Mesh) -> tuple:
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    smooth = np.empty(len(mesh.polygons), dtype=bool)
    mesh.polygons.foreach_get("use_smooth", smooth)
    attributes = tuple(sorted(a.name for a in mesh.attributes))  # e.g. an added sharp_edge
    return (mesh.name, co.tobytes(), smooth.tobytes(), len(mesh.loops), attributes,
            tuple(m.name if m else None for m in mesh.materials))  # fmt: skip


def _socket_value(socket: bpy.types.NodeSocket) -> Any:
    value = getattr(socket, "default_value", None)
    try:
        return tuple(value)  # type: ignore[arg-type]
    except TypeError:
        return value


def _material_print(mat: bpy.types.Material) -> tuple:
    tree = cast(bpy.types.ShaderNodeTree, mat.node_tree)
    nodes = tuple(
        (n.name, n.bl_idname, getattr(n, "distribution", None), getattr(n, "operation", None),
         getattr(n, "convert_from", None), getattr(n, "convert_to", None),
         tuple(_socket_value(s) for s in n.inputs))
        for n in tree.nodes
    )  # fmt: skip
    links = tuple(
        (lk.from_node.name, lk.from_socket.identifier, lk.to_node.name, lk.to_socket.identifier)
        for lk in cast(Any, tree.links)  # a link's ends are always set (the stubs allow None)
    )
    return (mat.name, tuple(mat.diffuse_color), mat.metallic, mat.roughness, nodes, links)


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
    mesh.use_fake_user = True  # survives with no users between requests
    _MESHES[shape] = mesh
    _PRINTS[mesh.as_pointer()] = _mesh_print(mesh)
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


def material(material: str, color: str) -> bpy.types.Material:
    """The CLEVR material for (material, color), built once and reused."""
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


def material_key(mat: bpy.types.Material) -> tuple[str, str] | None:
    """(material, color) if ``mat`` is one of the cached CLEVR materials, else None."""
    ptr = mat.as_pointer()
    for key, cached_mat in _MATERIALS.items():
        if alive(cached_mat) and cached_mat.as_pointer() == ptr:
            return key
    return None


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
                unchanged = False  # e.g. the node tree was removed
            if not unchanged:
                del cache[key]
                dropped.append(idb)
    names = [idb.name for idb in dropped]
    for idb in dropped:
        _PRINTS.pop(idb.as_pointer(), None)
    if dropped:
        bpy.data.batch_remove(dropped)
    return names
