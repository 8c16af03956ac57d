"""The CLEVR universe: shapes, sizes, materials, colours and placement constraints.

Values are those of facebookresearch/clevr-dataset-gen (``data/properties.json`` and the
defaults of ``render_images.py``). The geometry and shading parameters at the bottom are
derender's own: CLEVR loads binary ``.blend`` assets and node groups that do not exist in
Blender 5, so both the trusted builder and the ground-truth programs rebuild the shapes
from primitive operators with these exact parameters (which is what makes them render
pixel-identically).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
# primitive (half-extent 1) scaled uniformly by its radius, resting on z = 0.
SPHERE_SEGMENTS = 32
SPHERE_RINGS = 16
CYLINDER_VERTICES = 32
BEVEL_WIDTH = 0.12  # in the unit primitive's local space
BEVEL_SEGMENTS = 3
SMOOTH_SHAPES: frozenset[str] = frozenset({"sphere", "cylinder"})

# Principled BSDF stand-ins for CLEVR's Rubber and MyMetal node groups.
MATERIAL_PBR: MappingProxyType[str, MappingProxyType[str, float]] = MappingProxyType(
    {
        "rubber": MappingProxyType({"metallic": 0.0, "roughness": 0.8}),
        "metal": MappingProxyType({"metallic": 1.0, "roughness": 0.2}),
    }
)


def radius(shape: str, size: str) -> float:
    """The object's scale and resting height; CLEVR divides a cube's by sqrt(2)."""
    r = SIZES[size]
    return r / math.sqrt(2) if shape == "cube" else r


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
