"""``bpy.ops.mesh.primitive_*_add`` on the data API: shared meshes, a new object per call.

Blender's operators enter edit mode, run one bmesh operator, leave edit mode and push an
undo step: about 5 ms a call here. The same bmesh operator with the same arguments makes
the same mesh, so each mesh is built once per argument set (:func:`primitive_mesh`) and
shared through the asset cache (:func:`assets.shared_mesh`: kept, read-only, verified
after every step like the CLEVR assets). :func:`add_primitive` then does what the
operator does with the object: a new one named like the operator's, in the active
collection, at ``location`` (default: the 3D cursor) with ``rotation``, selected and made
active, everything else deselected. The operator's ``scale`` is applied to the mesh, as
there (not for planes, whose operator ignores it).

The agent sees its object's mesh as its own: every write to it goes to a private copy
first (:func:`writable_mesh`, named as the operator would have named its mesh), or, for
shading, to the shared smooth variant of the same mesh (:func:`shaded_mesh`). A shared
mesh is never written by agent code.

The mesh may differ from the operator's own in two ways no render shows: the order of a
UV sphere's edges and corners (the operator's own order depends on memory addresses, it
differs between runs), and, for rotated objects, the last bit of some coordinates (the
operator applies the inverse of the object's rotation to the rotated mesh, which rounds).
``primitive_torus_add`` is a Python operator without a bmesh operator; it is not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import bmesh
import bpy
import numpy as np
from mathutils import Matrix

from .. import assets
from .session import ScriptSession

# operator -> (object and mesh name, {argument: default}) for what the mesh depends on
_PARAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "primitive_cube_add": ("Cube", {"size": 2.0}),
    "primitive_plane_add": ("Plane", {"size": 2.0}),
    "primitive_uv_sphere_add": ("Sphere", {"segments": 32, "ring_count": 16, "radius": 1.0}),
    "primitive_ico_sphere_add": ("Icosphere", {"subdivisions": 2, "radius": 1.0}),
    "primitive_cylinder_add": (
        "Cylinder",
        {"vertices": 32, "radius": 1.0, "depth": 2.0, "end_fill_type": "NGON"},
    ),
    "primitive_cone_add": (
        "Cone",
        {"vertices": 32, "radius1": 1.0, "radius2": 0.0, "depth": 2.0, "end_fill_type": "NGON"},
    ),
}
OPERATORS = frozenset(_PARAMS)
_Key = tuple[str, tuple[Any, ...], bool, tuple[float, ...]]  # op, arguments, UVs, scale


def _f32(value: Any) -> float:
    """The float Blender stores (RNA floats are 32-bit)."""
    return float(np.float32(float(value)))


def _vector3(value: Any, what: str) -> tuple[float, float, float]:
    items = tuple(float(v) for v in value)
    if len(items) != 3:
        raise ValueError(f"{what} needs 3 values, got {len(items)}")
    return cast("tuple[float, float, float]", items)


def _bmesh_op(bm: bmesh.types.BMesh, op: str, p: Mapping[str, Any], **common: Any) -> Any:
    """The bmesh operator and arguments Blender's operator runs (editmesh_add.cc)."""
    create = bmesh.ops
    if op == "primitive_cube_add":
        return create.create_cube(bm, size=p["size"], **common)
    if op == "primitive_plane_add":
        return create.create_grid(bm, x_segments=0, y_segments=0, size=p["size"] / 2, **common)
    if op == "primitive_uv_sphere_add":
        return create.create_uvsphere(
            bm, u_segments=p["segments"], v_segments=p["ring_count"], radius=p["radius"], **common
        )
    if op == "primitive_ico_sphere_add":
        return create.create_icosphere(
            bm, subdivisions=p["subdivisions"], radius=p["radius"], **common
        )
    cylinder = op == "primitive_cylinder_add"
    return create.create_cone(
        bm,
        segments=p["vertices"],
        radius1=p["radius"] if cylinder else p["radius1"],
        radius2=p["radius"] if cylinder else p["radius2"],
        depth=p["depth"],
        cap_ends=p["end_fill_type"] != "NOTHING",
        cap_tris=p["end_fill_type"] == "TRIFAN",
        **common,
    )


def _build(key: _Key) -> bpy.types.Mesh:
    op, values, uvs, scale = key
    name, defaults = _PARAMS[op]
    params = dict(zip(defaults, values, strict=True))
    bm = bmesh.new()
    try:
        if uvs:
            bm.loops.layers.uv.new("UVMap")  # what the operator ensures before building
        matrix = Matrix.Diagonal((*scale, 1.0))
        made = _bmesh_op(bm, op, params, matrix=matrix, calc_uvs=uvs)
        for vert in made["verts"]:  # the operator selects what it made
            vert.select = True
        bm.select_flush(True)
        mesh = bpy.data.meshes.new(f"derender_primitive_{name.lower()}")
        bm.to_mesh(mesh)
    finally:
        bm.free()
    return mesh


def _key(op: str, kwargs: Mapping[str, Any]) -> _Key:
    """What the operator's mesh depends on, as Blender stores it (32-bit floats)."""
    _, defaults = _PARAMS[op]
    values = []
    for arg, default in defaults.items():
        value = kwargs.get(arg, default)
        values.append(_f32(value) if isinstance(default, float) else value)
    scale = (1.0, 1.0, 1.0)
    if op != "primitive_plane_add" and "scale" in kwargs:
        scale = tuple(_f32(v) for v in _vector3(kwargs["scale"], "scale"))  # type: ignore[assignment]
    return (op, tuple(values), bool(kwargs.get("calc_uvs", True)), scale)


def primitive_mesh(op: str, kwargs: Mapping[str, Any]) -> bpy.types.Mesh:
    """The shared mesh ``op`` makes with ``kwargs`` (checked by the caller)."""
    key = _key(op, kwargs)
    return assets.shared_mesh((key, False), lambda: _build(key))


def is_primitive_mesh(mesh: Any) -> bool:
    key = assets.shared_key(mesh) if isinstance(mesh, bpy.types.Mesh) else None
    return isinstance(key, tuple) and len(key) == 2 and key[0][0] in OPERATORS


def shaded_mesh(mesh: bpy.types.Mesh, smooth: bool) -> bpy.types.Mesh:
    """The shared variant of a shared primitive ``mesh`` with every face smooth or flat:
    what ``shade_smooth``/``shade_flat`` make of the operator's mesh (its faces are flat,
    it has no sharp edges to keep)."""
    key = cast("tuple[_Key, bool]", assets.shared_key(mesh))[0]
    flat = assets.shared_mesh((key, False), lambda: _build(key))
    if not smooth:
        return flat

    def build() -> bpy.types.Mesh:
        variant = flat.copy()
        variant.use_fake_user = False
        variant.shade_smooth()
        return variant

    return assets.shared_mesh((key, True), build)


def add_primitive(session: ScriptSession, op: str, kwargs: Mapping[str, Any]) -> bpy.types.Object:
    """What ``bpy.ops.mesh.<op>(**kwargs)`` does (``kwargs`` checked by the caller)."""
    scene = cast(bpy.types.Scene, bpy.context.scene)
    layer = cast(bpy.types.ViewLayer, bpy.context.view_layer)
    location = _vector3(kwargs.get("location", scene.cursor.location), "location")
    rotation = _vector3(kwargs.get("rotation", (0.0, 0.0, 0.0)), "rotation")
    mesh = primitive_mesh(op, kwargs)
    obj = bpy.data.objects.new(_PARAMS[op][0], mesh)
    obj.location, obj.rotation_euler = location, rotation
    cast(bpy.types.LayerCollection, layer.active_layer_collection).collection.objects.link(obj)
    for other in list(layer.objects.selected):
        other.select_set(False)
    obj.select_set(True)
    layer.objects.active = obj
    session.data.mesh_names[obj.session_uid] = obj.name  # the operator's mesh: same name
    return obj


def writable_mesh(session: ScriptSession, obj: bpy.types.Object) -> bpy.types.Mesh | None:
    """``obj``'s mesh, ready for the agent to write: its own, or a private copy of the
    shared primitive mesh it has (named as the operator would have named its mesh); None
    for a shared CLEVR asset (which is read-only)."""
    mesh = cast(bpy.types.Mesh, obj.data)
    if session.data.owns(mesh):
        return mesh
    if not session.data.owns(obj) or not is_primitive_mesh(mesh):
        return None
    copy = mesh.copy()
    copy.use_fake_user = False
    copy.name = session.data.mesh_names.pop(obj.session_uid, mesh.name)
    obj.data = copy
    session.data.add_id(copy)
    return copy


def shade(session: ScriptSession, obj: bpy.types.Object, smooth: bool) -> None:
    """``shade_smooth``/``shade_flat`` of the agent's ``obj``: its own mesh is written
    (the data API does what the operator does to a mesh without sharp edges), a shared
    primitive mesh is swapped for its shaded variant."""
    mesh = cast(bpy.types.Mesh, obj.data)
    if session.data.owns(mesh):
        if smooth:
            mesh.shade_smooth()
        else:
            mesh.shade_flat()
    else:
        obj.data = shaded_mesh(mesh, smooth)
