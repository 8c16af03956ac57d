"""Vertex estimates, so geometry bombs are refused before Blender allocates them.

Counts are upper bounds computed from operator arguments and modifier settings; the
budget compares the sum over all agent objects with ``ScriptLimits.max_vertices``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Primitive op -> (shape for readback, {keyword: (type, minimum, maximum)}, defaults).
# Ranges are Blender's own hard limits except where the budget decides.
_COMMON: dict[str, tuple[type, float, float]] = {
    "location": (tuple, 0, 0),
    "rotation": (tuple, 0, 0),
    "scale": (tuple, 0, 0),
    "calc_uvs": (bool, 0, 1),
}
PRIMITIVES: Mapping[str, tuple[str | None, dict[str, tuple[type, float, float]]]] = {
    "primitive_cube_add": ("cube", {"size": (float, 0.0, 1e6)}),
    "primitive_plane_add": (None, {"size": (float, 0.0, 1e6)}),
    "primitive_uv_sphere_add": (
        "sphere",
        {"segments": (int, 3, 100000), "ring_count": (int, 3, 100000), "radius": (float, 0, 1e6)},
    ),
    "primitive_ico_sphere_add": (
        "sphere",
        {"subdivisions": (int, 1, 10), "radius": (float, 0.0, 1e6)},
    ),
    "primitive_cylinder_add": (
        "cylinder",
        {
            "vertices": (int, 3, 1000),  # the n-gon caps are quadratic
            "radius": (float, 0.0, 1e6),
            "depth": (float, 0.0, 1e6),
            "end_fill_type": (str, 0, 0),
        },
    ),
    "primitive_cone_add": (
        None,
        {
            "vertices": (int, 3, 1000),  # the n-gon caps are quadratic
            "radius1": (float, 0.0, 1e6),
            "radius2": (float, 0.0, 1e6),
            "depth": (float, 0.0, 1e6),
            "end_fill_type": (str, 0, 0),
        },
    ),
    "primitive_torus_add": (
        None,
        {
            "major_segments": (int, 3, 256),
            "minor_segments": (int, 3, 256),
            "major_radius": (float, 0.0, 1e4),
            "minor_radius": (float, 0.0, 1e4),
        },
    ),
}
FILL_TYPES = ("NOTHING", "NGON", "TRIFAN")


def check_primitive_args(op: str, kwargs: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first problem with ``kwargs`` for ``op`` as (kind, message), or None.

    kind is "violation" (a keyword Blender has but the sandbox refuses, such as
    ``enter_editmode``), "limit" (a count above its maximum) or "value" (wrong type or
    below the minimum: an ordinary error).
    """
    allowed = {**_COMMON, **PRIMITIVES[op][1]}
    for key, value in kwargs.items():
        if key not in allowed:
            return "violation", f"bpy.ops.mesh.{op}() does not accept {key!r} in the sandbox"
        kind, lo, hi = allowed[key]
        if kind is tuple:
            continue  # Blender validates vectors itself
        if kind is str:
            if value not in FILL_TYPES:
                return "value", f"{key} must be one of {FILL_TYPES}, got {value!r}"
        elif kind is bool:
            if not isinstance(value, bool):
                return "value", f"{key} must be a bool, got {value!r}"
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return "value", f"{key} must be a number, got {value!r}"
        elif kind is int and not isinstance(value, int):
            return "value", f"{key} must be an int, got {value!r}"
        # int()/float(): a subclass may lie in its comparison methods, not in its value
        elif (plain := int(value) if kind is int else float(value)) < lo:
            return "value", f"{key} must be at least {lo}, got {plain!r}"
        elif plain > hi:
            return "limit", f"{key}={plain!r} is above the sandbox maximum {hi}"
    return None


def primitive_vertices(op: str, kwargs: Mapping[str, Any]) -> int:
    """Vertices ``op`` creates with ``kwargs`` (Blender's defaults where missing)."""
    get = kwargs.get
    if op in ("primitive_cube_add",):
        return 8
    if op == "primitive_plane_add":
        return 4
    if op == "primitive_uv_sphere_add":
        return int(get("segments", 32)) * (int(get("ring_count", 16)) - 1) + 2
    if op == "primitive_ico_sphere_add":
        return 10 * 4 ** (int(get("subdivisions", 2)) - 1) + 2
    if op in ("primitive_cylinder_add", "primitive_cone_add"):
        return 2 * int(get("vertices", 32)) + 2
    if op == "primitive_torus_add":
        return int(get("major_segments", 48)) * int(get("minor_segments", 12))
    raise KeyError(op)


# Modifier type -> settings an agent may write (beyond name/show_viewport/show_render).
MODIFIER_SETTINGS: Mapping[str, frozenset[str]] = {
    "BEVEL": frozenset(
        {
            "width",
            "segments",
            "limit_method",
            "angle_limit",
            "affect",
            "offset_type",
            "profile",
            "harden_normals",
            "use_clamp_overlap",
        }
    ),
    "SUBSURF": frozenset({"levels", "render_levels", "quality", "subdivision_type"}),
    "SOLIDIFY": frozenset({"thickness", "offset", "use_even_offset"}),
}
COMMON_MODIFIER_SETTINGS = frozenset({"name", "show_viewport", "show_render"})
MODIFIER_NAMES: Mapping[str, str] = {
    "BEVEL": "Bevel", "SUBSURF": "Subdivision", "SOLIDIFY": "Solidify",
}  # fmt: skip


def evaluated_vertices(
    verts: int,
    edges: int,
    faces: int,
    corners: int,
    modifiers: Iterable[tuple[str, Mapping[str, Any]]],
) -> int:
    """Upper bound on the vertices the renderer evaluates after a modifier stack.

    Catmull-Clark is exact: one level makes v + e + f vertices, 2e + c edges and c quads
    (c = face corners, so an n-gon counts n, not 4); later levels are all quads. Bevel is
    bounded per edge and per vertex (the patch at a vertex grows with its valence, and
    the valences sum to 2e). Subdivision uses the larger of ``levels`` and
    ``render_levels``: the render uses the latter, Workbench's viewport the former.
    """
    v, e, f, c = verts, edges, faces, corners
    for kind, settings in modifiers:
        if kind == "SUBSURF":
            levels = max(int(settings.get("levels", 1)), int(settings.get("render_levels", 2)))
            for _ in range(levels):
                v, e, f, c = v + e + f, 2 * e + c, c, 4 * c
        elif kind == "BEVEL":
            s = int(settings.get("segments", 1))
            strip, patch = 2 * e * (s + 1), 2 * e * s * s
            v, e, f = v + strip + patch, e + 2 * strip + 2 * patch, f + e * s + patch
            c = 4 * f
        elif kind == "SOLIDIFY":
            v, e, f, c = 2 * v, 2 * e + v, 2 * f + e, 2 * c + 4 * e
    return v
