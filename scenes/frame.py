"""FrameSpec: the locked camera, lights, ground, world and render settings, as plain data.

The frame belongs to the environment, not to the agent. ``addon.frame`` builds it in
Blender; everything here is pure Python so that the protocol, the generator and the
reward can reason about it (hash, directions, projection) without bpy.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from . import universe

Vec3 = tuple[float, float, float]

ENGINES: tuple[str, ...] = ("eevee", "workbench", "cycles")
RL_SIZES: Mapping[str, tuple[int, int]] = {"clevr": (320, 240), "128": (128, 128), "64": (64, 64)}


def _vec3(value: Any, name: str) -> Vec3:
    try:
        vec = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be three numbers, got {value!r}") from exc
    if len(vec) != 3 or not all(math.isfinite(v) for v in vec):
        raise ValueError(f"{name} must be three finite numbers, got {value!r}")
    return vec  # type: ignore[return-value]


@dataclass(frozen=True)
class Light:
    """An area light (or the sun) aimed at ``target``. Strength in Blender watts."""

    name: str
    kind: str  # "AREA" or "SUN"
    location: Vec3
    strength: float
    color: Vec3 = (1.0, 1.0, 1.0)
    size: float = 1.0
    target: Vec3 = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.kind not in ("AREA", "SUN"):
            raise ValueError(f"Light.kind must be 'AREA' or 'SUN', got {self.kind!r}")
        object.__setattr__(self, "location", _vec3(self.location, f"Light {self.name} location"))
        object.__setattr__(self, "color", _vec3(self.color, f"Light {self.name} color"))
        object.__setattr__(self, "target", _vec3(self.target, f"Light {self.name} target"))
        if not (math.isfinite(self.strength) and self.strength >= 0):
            raise ValueError(f"Light {self.name} strength must be >= 0, got {self.strength!r}")


@dataclass(frozen=True)
class Camera:
    """A perspective camera at ``location`` looking at ``target`` with world +z up."""

    location: Vec3 = (7.4811, -6.5076, 5.3437)
    target: Vec3 = (0.0, 0.0, 0.0)
    lens: float = 35.0  # mm
    sensor_width: float = 32.0  # mm; sensor fit AUTO: spans the larger image side
    sensor_height: float = 18.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "location", _vec3(self.location, "Camera.location"))
        object.__setattr__(self, "target", _vec3(self.target, "Camera.target"))
        if self.lens <= 0 or self.sensor_width <= 0 or self.sensor_height <= 0:
            raise ValueError(f"Camera lens and sensor must be positive, got {self!r}")

    def basis(self) -> tuple[Vec3, Vec3, Vec3]:
        """(right, up, forward) unit vectors of the camera in world space."""
        fwd = _normalize(_sub(self.target, self.location))
        right = _normalize(_cross(fwd, (0.0, 0.0, 1.0)))
        up = _cross(right, fwd)
        return right, up, fwd


def _default_lights() -> tuple[Light, ...]:
    # Positions from CLEVR's base_scene.blend; warm key, cool fill, neutral back.
    return (
        Light("Key", "AREA", (6.4467, -2.9052, 4.2584), 100.0, (1.0, 0.92, 0.82), 1.0),
        Light("Fill", "AREA", (-4.6711, -4.0136, 3.0112), 30.0, (0.82, 0.9, 1.0), 1.0),
        Light("Back", "AREA", (-1.1685, 2.6460, 5.8157), 50.0, (1.0, 1.0, 1.0), 1.0),
        Light("Sun", "SUN", (0.0, 0.0, 10.0), 0.5, (1.0, 1.0, 1.0), 0.0, (0.3, -0.2, 0.0)),
    )


@dataclass(frozen=True)
class FrameSpec:
    """Everything that fixes the pixels except the agent's objects."""

    width: int = 320
    height: int = 240
    engine: str = "eevee"
    samples: int = 16
    seed: int = 0  # the renderer's noise seed (Cycles), not the scene's
    camera: Camera = field(default_factory=Camera)
    lights: tuple[Light, ...] = field(default_factory=_default_lights)
    ground_color: Vec3 = (0.5, 0.5, 0.5)
    ground_size: float = 200.0  # reaches past the top edge of a square frame
    world_color: Vec3 = (0.05, 0.05, 0.05)
    world_strength: float = 1.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"FrameSpec.engine must be one of {ENGINES}, got {self.engine!r}")
        for name in ("width", "height", "samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 8192:
                raise ValueError(f"FrameSpec.{name} must be an int in 1..8192, got {value!r}")
        object.__setattr__(self, "lights", tuple(self.lights))
        object.__setattr__(self, "ground_color", _vec3(self.ground_color, "ground_color"))
        object.__setattr__(self, "world_color", _vec3(self.world_color, "world_color"))

    # -- identity -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrameSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"FrameSpec has no field(s) {sorted(unknown)}")
        kwargs = dict(data)
        if "camera" in kwargs and isinstance(kwargs["camera"], Mapping):
            kwargs["camera"] = Camera(**kwargs["camera"])
        if "lights" in kwargs:
            kwargs["lights"] = tuple(
                Light(**lt) if isinstance(lt, Mapping) else lt for lt in kwargs["lights"]
            )
        return cls(**kwargs)

    def hash(self) -> str:
        """Stable content hash of everything that affects pixels (16 hex digits)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_size(self, width: int, height: int | None = None) -> FrameSpec:
        return replace(self, width=width, height=width if height is None else height)

    def jittered(
        self,
        seed: int,
        camera: float = universe.CAMERA_JITTER,
        lights: float = universe.LIGHT_JITTER,
    ) -> FrameSpec:
        """A copy with CLEVR's uniform position jitter; the result is the exact frame."""
        rng = random.Random(f"frame-jitter:{seed}")

        def jitter(v: Vec3, mag: float) -> Vec3:
            return tuple(c + 2.0 * mag * (rng.random() - 0.5) for c in v)  # type: ignore[return-value]

        cam = replace(self.camera, location=jitter(self.camera.location, camera))
        lts = tuple(
            replace(lt, location=jitter(lt.location, lights)) if lt.kind == "AREA" else lt
            for lt in self.lights
        )
        return replace(self, camera=cam, lights=lts)

    # -- geometry -------------------------------------------------------------------
    def directions(self) -> dict[str, Vec3]:
        """CLEVR's six directions: the camera axes projected onto the ground plane."""
        right, _, fwd = self.camera.basis()
        behind = _normalize((fwd[0], fwd[1], 0.0))
        left = _normalize((-right[0], -right[1], 0.0))
        above = (0.0, 0.0, 1.0)
        return {
            "behind": behind,
            "front": _neg(behind),
            "left": left,
            "right": _neg(left),
            "above": above,
            "below": _neg(above),
        }

    def project(self, point: Vec3) -> tuple[float, float, float]:
        """Blender's world_to_camera_view: (x right, y up) in 0..1 and depth along view."""
        right, up, fwd = self.camera.basis()
        d = _sub(_vec3(point, "point"), self.camera.location)
        xc, yc, zc = _dot(d, right), _dot(d, up), _dot(d, fwd)
        if zc <= 0:
            return (0.5, 0.5, zc)
        larger = max(self.width, self.height)
        f = self.camera.lens / self.camera.sensor_width
        sx = f * larger / self.width
        sy = f * larger / self.height
        return (0.5 + sx * xc / zc, 0.5 + sy * yc / zc, zc)

    def pixel_coords(self, point: Vec3) -> tuple[int, int, float]:
        """CLEVR's ``pixel_coords``: integer pixel (from the top-left) and depth."""
        x, y, z = self.project(point)
        return (round(x * self.width), round(self.height - y * self.height), z)

    def min_pixels_per_object(self) -> int:
        """CLEVR's 200-pixel visibility threshold, scaled to this resolution."""
        scale = (self.width * self.height) / (320 * 240)
        return max(1, round(universe.MIN_PIXELS_PER_OBJECT * scale))


def _sub(a: Vec3, b: Vec3) -> Vec3:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _neg(a: Vec3) -> Vec3:
    return (-a[0], -a[1], -a[2])


def _dot(a: Vec3, b: Vec3) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Vec3, b: Vec3) -> Vec3:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _normalize(a: Vec3) -> Vec3:
    n = math.sqrt(_dot(a, a))
    if n == 0:
        raise ValueError(f"cannot normalise the zero vector {a!r}")
    return (a[0] / n, a[1] / n, a[2] / n)
