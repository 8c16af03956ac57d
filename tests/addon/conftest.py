"""Fixtures for the Blender render-core tests (one Blender per pytest process)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from derender.scenes.frame import FrameSpec

# Small, fast frames: Workbench and Cycles (few samples, fixed seed) at 64 px.
SPECS: dict[str, FrameSpec] = {
    "workbench": FrameSpec(width=64, height=64, engine="workbench", samples=8),
    "cycles": FrameSpec(width=64, height=64, engine="cycles", samples=4, seed=7),
    "eevee": FrameSpec(width=64, height=64, engine="eevee", samples=4),
}


@pytest.fixture
def spec_for():
    """engine name -> the small test FrameSpec of that engine."""
    return SPECS.__getitem__


@pytest.fixture
def built_frame():
    """This process's built frame, made for the test at the Workbench test spec (it takes
    the frame over from any earlier BuiltFrame or Service of this pytest process)."""
    from derender.addon.frame import BuiltFrame

    return BuiltFrame(SPECS["workbench"])


@pytest.fixture
def wb_frame(built_frame):
    """The Workbench test spec; ``built_frame`` is built for it and reset after the test."""
    yield SPECS["workbench"]
    built_frame.reset(SPECS["workbench"])


@pytest.fixture
def derender_addon():
    """The add-on enabled as Blender enables it (preferences included) on an empty factory
    file, at Workbench 64x64; disabled afterwards (panel/operator tests)."""
    import addon_utils
    import bpy

    def fail(exc: BaseException) -> None:
        raise exc

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("derender", default_set=True, handle_error=fail)
    props = bpy.context.scene.derender
    props.engine, props.width, props.height, props.samples = "workbench", 64, 64, 8
    yield bpy
    addon_utils.disable("derender", default_set=True, handle_error=fail)


# -- comparable dumps of meshes and materials (what a render may read of them) -------------
def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, set):
        return tuple(sorted(value))
    try:
        return tuple(_plain(v) for v in value)
    except TypeError:
        return repr(value)


_ID_FIELDS = frozenset(
    {
        "name",
        "name_full",
        "session_uid",
        "users",
        "use_fake_user",
        "tag",
        "use_extra_user",
        "is_runtime_data",
    }
)


def _material_dump(mat: Any) -> dict[str, Any]:
    """Every value of a material that a render may read: its plain properties and every
    node input, and the node graph (names excluded: a suffixed asset name is harmless)."""
    out = {
        p.identifier: _plain(getattr(mat, p.identifier))
        for p in mat.bl_rna.properties
        if p.type in {"BOOLEAN", "INT", "FLOAT", "ENUM"} and p.identifier not in _ID_FIELDS
    }
    tree = mat.node_tree
    out["nodes"] = sorted(
        (
            n.bl_idname,
            n.name,
            tuple((s.identifier, _plain(getattr(s, "default_value", None))) for s in n.inputs),
        )
        for n in tree.nodes
    )
    out["links"] = sorted(
        (lk.from_node.name, lk.from_socket.identifier, lk.to_node.name, lk.to_socket.identifier)
        for lk in tree.links
    )
    return out


def _mesh_dump(mesh: Any) -> dict[str, Any]:
    """Every value of a mesh that a render may read: positions, faces with their corners'
    normals and UVs, edges, attributes, material slots. Faces and edges are listed in a
    canonical order: Blender's own order of them differs between two builds of one mesh."""
    uv_layers = list(mesh.uv_layers)
    attributes = [a for a in mesh.attributes if not a.name.startswith(".")]

    def value(attribute: Any, index: int) -> Any:
        item = attribute.data[index]
        for field in ("value", "vector", "color"):
            if hasattr(item, field):
                return _plain(getattr(item, field))
        return None

    def corner(i: int) -> tuple:
        return (
            mesh.loops[i].vertex_index,
            _plain(mesh.corner_normals[i].vector),
            tuple(_plain(layer.data[i].uv) for layer in uv_layers),
            tuple(value(a, i) for a in attributes if a.domain == "CORNER"),
        )

    faces = []
    for f in mesh.polygons:
        corners = [corner(i) for i in f.loop_indices]
        first = min(range(len(corners)), key=lambda k: corners[k][0])
        faces.append(
            (
                tuple(corners[first:] + corners[:first]),
                f.use_smooth,
                f.material_index,
                tuple(value(a, f.index) for a in attributes if a.domain == "FACE"),
            )
        )
    edges = sorted(
        (
            tuple(sorted(e.vertices)),
            tuple(value(a, e.index) for a in attributes if a.domain == "EDGE"),
        )
        for e in mesh.edges
    )  # (vertex pair, ...): the ints decide the order
    points = [
        (_plain(v.co), tuple(value(a, v.index) for a in attributes if a.domain == "POINT"))
        for v in mesh.vertices
    ]
    return {
        "points": points,
        "edges": edges,
        "faces": sorted(faces, key=lambda f: tuple(c[0] for c in f[0])),
        "attributes": sorted((a.name, a.domain, a.data_type) for a in attributes),
        "uv_layers": [layer.name for layer in uv_layers],
        "materials": tuple(m.name if m else None for m in mesh.materials),
    }


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-5: two builds of one mesh differ in normals by float noise."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= 1e-5
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.fixture(scope="session")
def dumps() -> SimpleNamespace:
    """``dumps.mesh(mesh)``, ``dumps.material(mat)``: every value a render may read, in a
    canonical order; ``dumps.close(a, b)``: equal, floats to 1e-5."""
    return SimpleNamespace(mesh=_mesh_dump, material=_material_dump, close=_close)
