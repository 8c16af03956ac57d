"""Modifier results, cached by what they are made from: one evaluation per kind of object.

Blender evaluates the modifier stack of every new object, and a bpy program makes new
objects every step: the bevel of one CLEVR cylinder costs ~7 ms, a cube's ~0.7 ms, and a
rendered step evaluates them twice (the render's depsgraph, then the read-back's): for ten
objects more than the rest of the step outside the render. What a stack of :data:`LOCAL_MODIFIERS`
makes depends only on the mesh, the modifiers' own values and the number of material
slots (no object transform, no other datablock). So, after the script and before the
check of the assets a render uses (no agent code runs in the step from then on):

- :func:`substitute`: an agent object whose stack was evaluated before (the same
  :func:`key`) gets that result, a shared mesh of the asset cache
  (:func:`.assets.shared_mesh`: read-only, compared before renders that use it): the
  object's ``data`` becomes it, its material slots are linked to the object and hold the
  materials the object showed, and its modifiers stop applying (``show_viewport`` and
  ``show_render`` off). That is how the trusted builder makes CLEVR objects, which render
  pixel-identically to the same objects with live modifiers; the read-back sees the same
  vertices, so the same dimensions.
- :func:`remember`: after the render or the read-back evaluated the rest, a key seen for
  the second time is cached from the object's evaluated mesh (once: an agent that
  changes a bevel's width every step makes keys that never come back, and would only pay
  for copies).

Subdivision is left live: with a GPU, Blender may subdivide the last level on the GPU,
which a mesh evaluated on the CPU would not match bit for bit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, cast

import bpy
import numpy as np

from . import assets
from .rna_walk import Walk

# Types whose result is a function of the mesh and their own values: neither points at a
# datablock (another object's transform, a texture), which a key could not hold.
LOCAL_MODIFIERS = frozenset({"BEVEL", "SOLIDIFY"})
SEEN_CAPACITY = 64  # keys seen once, remembered for a second sighting
_SEEN: OrderedDict[Hashable, None] = OrderedDict()
_MODIFIER_SKIP = frozenset({"name", "show_expanded", "is_active"})
_SELECTION = (".select_", ".uv_select_")  # edit-mode selection attributes
# attribute data type -> (the property foreach_get reads, values per element, dtype)
_LAYOUT: dict[str, tuple[str, int, type]] = {
    "FLOAT": ("value", 1, np.float32), "INT": ("value", 1, np.int32),
    "INT8": ("value", 1, np.int8), "BOOLEAN": ("value", 1, np.bool_),
    "FLOAT_VECTOR": ("vector", 3, np.float32), "FLOAT2": ("vector", 2, np.float32),
    "INT32_2D": ("value", 2, np.int32), "FLOAT_COLOR": ("color", 4, np.float32),
    "BYTE_COLOR": ("color", 4, np.float32), "QUATERNION": ("value", 4, np.float32),
    "FLOAT4X4": ("value", 16, np.float32),
}  # fmt: skip


class EvaluatedMeshEdited(RuntimeError):
    """A cached modifier result was edited (through a hole in the sandbox): it cannot be
    made again without the object it came from, so the step ends frame_tampered."""


def key(obj: bpy.types.Object) -> Hashable | None:
    """What the evaluated mesh of ``obj`` depends on, or None if that is not only the
    mesh and the stack: every value of its mesh but its name and materials, the number of
    material slots, every value of each modifier but its name (all of them of
    :data:`LOCAL_MODIFIERS`, each on in both the viewport and the render or in neither:
    the result is cached from the viewport's evaluation), and no vertex groups or shape
    keys."""
    if obj.type != "MESH" or not obj.modifiers or obj.vertex_groups:
        return None
    mesh = cast(bpy.types.Mesh, obj.data)
    if mesh.shape_keys is not None:
        return None
    stack = []
    for mod in obj.modifiers:
        if mod.type not in LOCAL_MODIFIERS or mod.show_viewport != mod.show_render:
            return None
        walk = Walk(None, paths=False)
        walk.struct(mod, None, _MODIFIER_SKIP)
        stack.append(tuple(walk.out))
    geometry = _geometry(mesh)
    if geometry is None:
        return None
    return ("evaluated", len(mesh.materials), geometry, tuple(stack))


def _geometry(mesh: bpy.types.Mesh) -> tuple | None:
    """All a modifier reads of ``mesh``: every attribute (positions, topology, shading,
    UVs, weights: Blender keeps them all as attributes) but the selection, which only
    edit-mode tools read, and the face offsets; None for an attribute type it cannot
    read in bulk."""
    sizes = {
        "POINT": len(mesh.vertices), "EDGE": len(mesh.edges), "FACE": len(mesh.polygons),
        "CORNER": len(mesh.loops),
    }  # fmt: skip
    out: list[object] = [tuple(sizes.values())]
    for attr in mesh.attributes:
        name, data_type, domain = attr.name, attr.data_type, attr.domain
        if name.startswith(_SELECTION):
            continue
        layout = _LAYOUT.get(data_type)
        if layout is None or domain not in sizes:
            return None
        prop, width, dtype = layout
        buf: np.ndarray = np.empty(sizes[domain] * width, dtype=dtype)
        cast(Any, attr).data.foreach_get(prop, buf)  # each subtype of Attribute has data
        out.append((name, domain, data_type, buf.tobytes()))
    offsets = np.empty(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_start", offsets)
    out.append(offsets.tobytes())
    return tuple(out)


def substitute(objects: Iterable[bpy.types.Object]) -> list[tuple[bpy.types.Object, Hashable]]:
    """Give each object whose key is cached its cached result; return the others that
    have a key (for :func:`remember`)."""
    missed = []
    for obj in objects:
        k = key(obj)
        if k is None:
            continue
        mesh = assets.cached_shared_mesh(k)
        if mesh is None:
            missed.append((obj, k))
            continue
        shown = [slot.material for slot in obj.material_slots]
        if len(shown) != len(mesh.materials):  # the key counts the mesh's slots
            continue
        obj.data = mesh
        for slot, material in zip(obj.material_slots, shown, strict=True):
            slot.link = "OBJECT"
            slot.material = material
        for mod in obj.modifiers:
            mod.show_viewport = mod.show_render = False
    return missed


def remember(missed: Sequence[tuple[bpy.types.Object, Hashable]]) -> None:
    """Cache the evaluated mesh of each object in ``missed`` whose key was seen before
    (the depsgraph is evaluated: a render or the read-back ran)."""
    depsgraph = None
    for obj, k in missed:
        if k not in _SEEN:
            _SEEN[k] = None
            if len(_SEEN) > SEEN_CAPACITY:
                _SEEN.popitem(last=False)
            continue
        if assets.cached_shared_mesh(k) is not None:  # two objects of one kind
            continue
        depsgraph = depsgraph or bpy.context.evaluated_depsgraph_get()
        assets.shared_mesh(k, _baker(obj.evaluated_get(depsgraph)))
        del _SEEN[k]


def _baker(evaluated: bpy.types.Object) -> Callable[[], bpy.types.Mesh]:
    """Builds the cached result from ``evaluated``, once: to make an edited one again
    the cache would need the object, which is gone by then."""
    slots = len(cast(bpy.types.Mesh, evaluated.data).materials)
    made = False

    def bake() -> bpy.types.Mesh:
        nonlocal made
        if made:
            raise EvaluatedMeshEdited("a cached modifier result was edited")
        made = True
        mesh = bpy.data.meshes.new_from_object(evaluated)
        # generated coordinates (a shader's default tangent) span the texture space of
        # the mesh before its modifiers, not the bounds of the result
        source = cast(bpy.types.Mesh, evaluated.data)
        mesh.use_auto_texspace = False
        mesh.texspace_location = source.texspace_location
        mesh.texspace_size = source.texspace_size
        mesh.materials.clear()
        for _ in range(slots):
            mesh.materials.append(None)
        mesh.name = "derender_evaluated"
        return mesh

    return bake
