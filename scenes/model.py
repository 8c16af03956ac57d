"""The renderer-independent scene model: immutable, validated CLEVR scenes.

Rotation is stored exactly as Blender applies it: radians about +z. CLEVR's generator
draws ``theta = 360 * random()`` and assigns it to ``rotation_euler[2]``, which Blender
reads as radians, and writes the same raw number to the JSON ``rotation`` field; we keep
that convention so that CLEVR's own scene files load unchanged and render as CLEVR did.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from . import universe
from .frame import POSE_KEY

Vec3 = tuple[float, float, float]


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _choice(value: Any, allowed: Iterable[str], name: str) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class SceneObject:
    """One CLEVR object. ``z`` defaults to the resting height (the shape's radius)."""

    shape: str
    size: str
    material: str
    color: str
    x: float
    y: float
    rotation: float = 0.0
    z: float | None = None
    pixel_coords: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        _choice(self.shape, universe.SHAPES, "shape")
        _choice(self.size, universe.SIZES, "size")
        _choice(self.material, universe.MATERIALS, "material")
        _choice(self.color, universe.COLORS, "color")
        object.__setattr__(self, "x", _finite(self.x, "x"))
        object.__setattr__(self, "y", _finite(self.y, "y"))
        object.__setattr__(self, "rotation", _finite(self.rotation, "rotation"))
        z = self.resting_z if self.z is None else _finite(self.z, "z")
        object.__setattr__(self, "z", z)
        if self.pixel_coords is not None:
            pc = tuple(self.pixel_coords)
            if len(pc) != 3:
                raise ValueError(f"pixel_coords must have 3 entries, got {self.pixel_coords!r}")
            for i, v in enumerate(pc):
                _finite(v, f"pixel_coords[{i}]")
            object.__setattr__(self, "pixel_coords", pc)

    @property
    def radius(self) -> float:
        """Uniform scale of the unit primitive: CLEVR's r, the nominal size for every shape."""
        return universe.radius(self.size)

    @property
    def resting_z(self) -> float:
        return self.radius

    @property
    def position(self) -> Vec3:
        assert self.z is not None  # set in __post_init__
        return (self.x, self.y, self.z)

    def attributes(self) -> tuple[str, str, str, str]:
        return (self.shape, self.size, self.material, self.color)

    def moved(self, dx: float = 0.0, dy: float = 0.0) -> SceneObject:
        """A copy shifted on the ground plane (pixel_coords dropped: they would be stale)."""
        return replace(self, x=self.x + dx, y=self.y + dy, pixel_coords=None)


@dataclass(frozen=True)
class Scene:
    """An ordered, immutable set of objects plus CLEVR bookkeeping fields.

    ``extra`` holds top-level CLEVR JSON keys that derender does not interpret
    (``directions``, ``relationships``, ``image_index`` …) so that files round-trip exactly.
    """

    objects: tuple[SceneObject, ...]
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        objs = tuple(self.objects)
        for i, obj in enumerate(objs):
            if not isinstance(obj, SceneObject):
                raise ValueError(f"objects[{i}] must be a SceneObject, got {type(obj).__name__}")
        object.__setattr__(self, "objects", objs)
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def __len__(self) -> int:
        return len(self.objects)

    def __hash__(self) -> int:
        return hash(self.objects)

    def with_objects(self, objects: Iterable[SceneObject]) -> Scene:
        """A scene with other objects; derived CLEVR fields that would be stale are dropped."""
        extra = {k: v for k, v in self.extra.items() if k != "relationships"}
        return Scene(tuple(objects), extra)

    def stripped(self) -> Scene:
        """Only what determines pixels: objects without pixel_coords, and of the extra
        fields only a jittered scene's own camera and lights (``frame_pose``)."""
        pose = {k: v for k, v in self.extra.items() if k == POSE_KEY}
        return Scene(tuple(replace(o, pixel_coords=None) for o in self.objects), pose)
