"""The CLEVR universe: shapes, sizes, materials, colours and placement constraints.

Values are those of facebookresearch/clevr-dataset-gen (``data/properties.json`` and the
defaults of ``render_images.py``). CLEVR loads its shapes from binary ``.blend`` files;
derender ships no binary assets, so both the trusted builder and the ground-truth programs
rebuild each shape from a primitive operator and modifiers the sandbox allows, with the
parameters at the bottom (which is what makes them render pixel-identically). Those were
fitted to the vertices of CLEVR's meshes, read with bpy from ``data/shapes/*.blend``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

SHAPES: tuple[str, ...] = ("cube", "sphere", "cylinder")
SIZES: MappingProxyType[str, float] = MappingProxyType({"large": 0.7, "small": 0.35})
MATERIALS: tuple[str, ...] = ("rubber", "metal")
COLORS: MappingProxyType[str, tuple[int, int, int]] = MappingProxyType(
    {
        "gray": (87, 87, 87),
        "red": (173, 35, 35),
        "blue": (42, 75, 215),
        "green": (29, 105, 20),
        "brown": (129, 74, 25),
        "purple": (129, 38, 192),
        "cyan": (41, 208, 208),
        "yellow": (255, 238, 51),
    }
)

# render_images.py defaults.
PLACEMENT_BOUNDS = 3.0  # x, y ~ U(-3, 3)
MIN_DIST = 0.25  # minimum surface gap between two objects
MARGIN = 0.4  # minimum separation along each cardinal direction
MIN_OBJECTS = 3
MAX_OBJECTS = 10
MAX_RETRIES = 50
MIN_PIXELS_PER_OBJECT = 200  # at 320x240; scaled with the pixel count
CAMERA_JITTER = 0.5
LIGHT_JITTER = 1.0
RELATION_EPS = 0.2

# CoGenT condition A/B shape-colour combinations (data/CoGenT_A.json, CoGenT_B.json).
COGENT_A: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "cube": ("gray", "blue", "brown", "yellow"),
        "cylinder": ("red", "green", "purple", "cyan"),
        "sphere": tuple(COLORS),
    }
)
COGENT_B: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "cube": ("red", "green", "purple", "cyan"),
        "cylinder": ("gray", "blue", "brown", "yellow"),
        "sphere": tuple(COLORS),
    }
)


# Geometry shared by addon.assets and the ground-truth bpy programs. Every shape is a unit
# primitive (half-extent 1) made by a primitive operator with these arguments, then these
# modifiers (the rest at Blender's defaults: a bevel is limited by angle, 30°), scaled
# uniformly by its size (CLEVR's r) and resting on z = 0. Fitted to CLEVR's meshes and
# measured against the reference renderer (tests/clevr_reference) at 480x320; CLEVR's own
# meshes are far denser than the pixels need, and every triangle costs Workbench and EEVEE
# without a GPU (10 objects of these render in Workbench at 128 px about 1.4x as long as
# 10 of derender's earlier primitives; CLEVR's own meshes: ~30x).
# - SmoothCube_v2 is a cube bevelled with 24 segments whose profile (a superellipse,
#   squarer than a circle) this bevel reproduces: with 24 segments it gives CLEVR's 3,752
#   vertices, each within 1.1e-3 of CLEVR's. Smooth-shaded, as CLEVR's. Six segments
#   (296 vertices; CLEVR's vertices lie within 5.3e-3 of their surface, 0.2 px at
#   480x320) render the same to 0.015 level (4x4 MAE).
# - Sphere is an ico sphere (2,562 vertices) with one Catmull-Clark level, 15,362 vertices,
#   flat-shaded. A smooth-shaded ico sphere of 642 vertices renders the same (< 0.01 level;
#   flat-shaded, 0.04 worse) and lies within 0.003 r of the true sphere.
# - SmoothCylinder has 128 flat side facets and a rounded rim, flat-shaded; CLEVR's rim
#   profile lies within 2.8e-3 of this bevel (CLEVR rounds it with 1,024 segments around
#   and 16 along; four along suffice for a rim 2-3 px wide).
PRIMITIVES: MappingProxyType[str, tuple[str, MappingProxyType[str, float]]] = MappingProxyType(
    {
        "cube": ("primitive_cube_add", MappingProxyType({"size": 2.0})),
        "sphere": (
            "primitive_ico_sphere_add",
            MappingProxyType({"subdivisions": 4, "radius": 1.0}),
        ),
        "cylinder": (
            "primitive_cylinder_add",
            MappingProxyType({"vertices": 128, "radius": 1.0, "depth": 2.0}),
        ),
    }
)
Modifier = tuple[str, Mapping[str, object]]  # (type, settings)
MODIFIERS: MappingProxyType[str, tuple[Modifier, ...]] = MappingProxyType(
    {
        "cube": (("BEVEL", MappingProxyType({"width": 0.25, "segments": 6, "profile": 0.63})),),
        "sphere": (),
        "cylinder": (("BEVEL", MappingProxyType({"width": 0.1, "segments": 4, "profile": 0.72})),),
    }
)
SMOOTH_SHAPES: frozenset[str] = frozenset({"cube", "sphere"})

# The viewport values of CLEVR's materials (what Workbench shows; Cycles and EEVEE render
# CLEVR's node trees, built in addon.assets).
MATERIAL_VIEWPORT: MappingProxyType[str, MappingProxyType[str, float]] = MappingProxyType(
    {
        "rubber": MappingProxyType({"metallic": 0.0, "roughness": 0.8}),
        "metal": MappingProxyType({"metallic": 1.0, "roughness": 0.2}),
    }
)


def radius(size: str) -> float:
    """The object's scale and resting height, the same for every shape.

    CLEVR's ``if obj_name == 'Cube': r /= sqrt(2)`` never fires (the object is named
    ``SmoothCube_v2``), and its scene JSON confirms it: a large cube rests at z = 0.7.
    """
    return SIZES[size]


def color_rgba(color: str) -> tuple[float, float, float, float]:
    """The colour as CLEVR feeds it to its material: linear RGB = sRGB bytes / 255."""
    r, g, b = COLORS[color]
    return (r / 255.0, g / 255.0, b / 255.0, 1.0)


def nearest_color(rgb: Sequence[float]) -> str:
    """The CLEVR colour closest (Euclidean, 0..1 units) to a linear RGB triple."""

    def dist(name: str) -> float:
        ref = color_rgba(name)
        return sum((ref[i] - float(rgb[i])) ** 2 for i in range(3))

    return min(COLORS, key=dist)


def describe() -> dict[str, object]:
    """The universe as plain JSON data (sent to agents in `info`)."""
    return {
        "shapes": list(SHAPES),
        "sizes": dict(SIZES),
        "materials": list(MATERIALS),
        "colors": {k: list(v) for k, v in COLORS.items()},
        "placement_bounds": PLACEMENT_BOUNDS,
        "min_dist": MIN_DIST,
        "margin": MARGIN,
        "object_count": [MIN_OBJECTS, MAX_OBJECTS],
        "rotation_units": "radians about +z",
    }
