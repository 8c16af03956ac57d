"""CLEVR's ``Rubber`` and ``MyMetal`` node groups (``data/materials/*.blend``, as Blender
5.0 loads them), rebuilt node for node in code, and CLEVR's materials made of them.

As in CLEVR's generator (``utils.add_material``), a material is its output node fed by one
group node whose ``Color`` input holds the object's colour; the surface itself lives once
per kind in its group. Cycles and EEVEE flatten a group before they compile a shader, so
the pixels are those of the same nodes written out in each material (measured on both:
identical images). Where Blender 5.0 needs a choice, it is made as its own versioning of
the 2.78 files makes it (see :func:`_rubber` and :func:`_metal`).

Only construction lives here; :mod:`.assets` caches and verifies what is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, cast

import bpy

from ..scenes import universe


class _Nodes:
    """Shorthand for building one node tree."""

    def __init__(self, tree: bpy.types.NodeTree) -> None:
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


def _rubber(n: _Nodes, color: Any) -> Any:
    """CLEVR's ``Rubber`` group with its defaults (IOR 1.2, roughness 0.35): a Fresnel(IOR +
    0.2)-weighted mix of Lambert diffuse and Velvet (σ 0.6) under a Fresnel(IOR)-weighted
    Beckmann glossy of colour 0.8. Blender 4.0 replaced Velvet by the Sheen BSDF's
    ``ASHIKHMIN`` (the same model) and the Glossy node by the Anisotropic one (anisotropy 0),
    and since 2.8 glossy roughness is squared, so the 2.78 roughness 0.35 becomes
    sqrt(0.35): what Blender's versioning of Rubber.blend makes, node for node. ``color``:
    the output socket the object's colour comes from."""
    ior = 1.2
    diffuse = n.add("ShaderNodeBsdfDiffuse", Roughness=0.0)
    n.link(color, diffuse, "Color")
    velvet = n.add("ShaderNodeBsdfSheen", distribution="ASHIKHMIN", Roughness=0.6)
    n.link(color, velvet, "Color")
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


def _metal(n: _Nodes, color: Any) -> Any:
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
            "ShaderNodeBsdfAnisotropic", distribution="GGX", Roughness=roughness, Anisotropy=0.25
        )
        n.link(color, lobe, "Color")
        n.link(world.outputs["Vector"], lobe, "Tangent")
        lobes.append(lobe)
    mix = n.add("ShaderNodeMixShader", Fac=0.6)
    n.link(lobes[0].outputs["BSDF"], mix, 1)
    n.link(lobes[1].outputs["BSDF"], mix, 2)
    return mix.outputs["Shader"]


_SURFACES: Mapping[str, Callable[[_Nodes, Any], Any]] = {"rubber": _rubber, "metal": _metal}
# CLEVR's names for its groups (``properties.json``: "rubber": "Rubber", "metal": "MyMetal")
_GROUP_NAMES: Mapping[str, str] = {"rubber": "Rubber", "metal": "MyMetal"}


def surface_group(kind: str) -> bpy.types.ShaderNodeTree:
    """A new node group of CLEVR's surface ``kind`` (rubber, metal), named
    ``derender_<CLEVR's name>``: a ``Color`` input, a ``Shader`` output."""
    if kind not in _SURFACES:
        raise ValueError(f"material must be one of {universe.MATERIALS}, got {kind!r}")
    tree = cast(
        bpy.types.ShaderNodeTree,
        bpy.data.node_groups.new(f"derender_{_GROUP_NAMES[kind]}", "ShaderNodeTree"),
    )
    sockets = cast(bpy.types.NodeTreeInterface, tree.interface)  # a group always has one
    sockets.new_socket("Color", in_out="INPUT", socket_type="NodeSocketColor")
    sockets.new_socket("Shader", in_out="OUTPUT", socket_type="NodeSocketShader")
    nodes = _Nodes(tree)
    color = nodes.add("NodeGroupInput").outputs["Color"]
    nodes.link(_SURFACES[kind](nodes, color), nodes.add("NodeGroupOutput"), "Shader")
    return tree


def setup_material(
    mat: bpy.types.Material, kind: str, color: str, group: bpy.types.ShaderNodeTree
) -> None:
    """Make ``mat`` CLEVR's material of ``kind`` in ``color``: its nodes replaced by
    ``group`` (that kind's :func:`surface_group`) with the colour on its ``Color`` input,
    and CLEVR's viewport values (what Workbench renders)."""
    try:
        viewport = universe.MATERIAL_VIEWPORT[kind]
        rgba = universe.color_rgba(color)
    except KeyError as exc:
        raise ValueError(f"unknown material/color {kind!r}/{color!r}") from exc
    mat.diffuse_color = rgba
    mat.metallic = viewport["metallic"]
    mat.roughness = viewport["roughness"]
    tree = cast(bpy.types.ShaderNodeTree, mat.node_tree)  # always there since Blender 5.0
    tree.nodes.clear()
    nodes = _Nodes(tree)
    surface = nodes.add("ShaderNodeGroup")
    surface.node_tree = group
    surface.inputs["Color"].default_value = rgba
    nodes.link(surface.outputs["Shader"], nodes.add("ShaderNodeOutputMaterial"), "Surface")
