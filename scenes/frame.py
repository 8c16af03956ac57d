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

from . import backdrop, universe

Vec3 = tuple[float, float, float]

ENGINES: tuple[str, ...] = ("eevee", "workbench", "cycles")
PRESETS: tuple[str, ...] = ("clevr", "clevr-rl")
POSE_KEY = "frame_pose"  # the scene JSON key of a jittered target's exact camera and lights
CLEVR_SAMPLES = 512  # render_images.py --render_num_samples


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

    # base_scene.blend: the camera tracks an empty at the origin (-Z forward, +Y up).
    location: Vec3 = (7.481131553649902, -6.5076398849487305, 5.34366512298584)
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


def _sun_target(location: Vec3, euler_deg: Vec3) -> Vec3:
    """A point the sun of ``location`` and XYZ rotation ``euler_deg`` shines at (-Z)."""
    a, b, c = (math.radians(v) for v in euler_deg)
    forward = (
        -(math.cos(a) * math.sin(b) * math.cos(c) + math.sin(a) * math.sin(c)),
        -(math.cos(a) * math.sin(b) * math.sin(c) - math.sin(a) * math.cos(c)),
        -(math.cos(a) * math.cos(b)),
    )
    return (location[0] + forward[0], location[1] + forward[1], location[2] + forward[2])


_SUN_LOCATION: Vec3 = (11.660806655883789, -6.627992630004883, 25.82316780090332)


def _default_lights() -> tuple[Light, ...]:
    """base_scene.blend's lamps as Blender >= 4.0 reads them. The square area lamps
    (tracking the origin) had 2.78 strengths 100/30/50, which 4.0's versioning multiplies
    by pi/4; the sun (an object named "Area") keeps its rotation, shining back-left at
    62.8 degrees elevation, and its angular diameter of 11.42 degrees."""
    return (
        Light("Key", "AREA", (6.446710109710693, -2.905174732208252, 4.258398056030273),
              100 * math.pi / 4, (1.0, 0.9323092103004456, 0.8166635632514954), 0.5),
        Light("Fill", "AREA", (-4.671124458312988, -4.01359748840332, 3.0112245082855225),
              30 * math.pi / 4, (0.7616661787033081, 0.8177196383476257, 1.0), 0.5),
        Light("Back", "AREA", (-1.168501377105713, 2.646024465560913, 5.815736770629883),
              50 * math.pi / 4, (1.0, 1.0, 1.0), 1.0),
        Light("Sun", "SUN", _SUN_LOCATION, 0.45, (1.0, 1.0, 1.0), 0.19933730363845825,
              _sun_target(_SUN_LOCATION, (13.523436462261332, 23.885487423783704,
                                          5.562237121359815))),
    )  # fmt: skip


@dataclass(frozen=True)
class FrameSpec:
    """Everything that fixes the pixels except the agent's objects: CLEVR's frame
    (``data/base_scene.blend``) at CLEVR v1.0's 480x320 unless told otherwise. The ground
    is CLEVR's backdrop (:mod:`scenes.backdrop`); the world is dark and lights nothing."""

    width: int = 480
    height: int = 320
    engine: str = "eevee"
    samples: int = 16
    seed: int = 0  # the renderer's noise seed (Cycles), not the scene's
    camera: Camera = field(default_factory=Camera)
    lights: tuple[Light, ...] = field(default_factory=_default_lights)
    ground_color: Vec3 = (backdrop.COLOR, backdrop.COLOR, backdrop.COLOR)
    world_color: Vec3 = (0.05087608844041824, 0.05087608844041824, 0.05087608844041824)
    world_strength: float = 0.0
    # EEVEE has no light bounced off the backdrop (Cycles' 4 diffuse bounces; EEVEE would
    # need baked probes): it renders the world at this strength instead, a uniform stand-in
    # fitted against the reference (4x4 MAE 2.7-3.3 levels, 5.4-6.4 without it).
    eevee_world_strength: float = 0.5

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

    def rendered_world_strength(self) -> float:
        """The world strength this frame's engine renders with (see eevee_world_strength)."""
        return self.eevee_world_strength if self.engine == "eevee" else self.world_strength

    def with_size(self, width: int, height: int | None = None) -> FrameSpec:
        return replace(self, width=width, height=width if height is None else height)

    def jittered(
        self,
        seed: int | str,
        camera: float = universe.CAMERA_JITTER,
        lights: float = universe.LIGHT_JITTER,
    ) -> FrameSpec:
        """A copy with CLEVR's uniform position jitter (each coordinate of the camera and
        of the area lights moves by U(-m, m); the sun stays); the result is the exact
        frame. The same ``seed`` gives the same frame on every machine."""
        rng = random.Random(f"frame-jitter:{seed}")

        def jitter(v: Vec3, mag: float) -> Vec3:
            return tuple(c + 2.0 * mag * (rng.random() - 0.5) for c in v)  # type: ignore[return-value]

        cam = replace(self.camera, location=jitter(self.camera.location, camera))
        lts = tuple(
            replace(lt, location=jitter(lt.location, lights)) if lt.kind == "AREA" else lt
            for lt in self.lights
        )
        return replace(self, camera=cam, lights=lts)

    def pose(self) -> dict[str, Any]:
        """The camera and lights as plain data: what jitter changes (see :meth:`posed`)."""
        return {"camera": asdict(self.camera), "lights": [asdict(lt) for lt in self.lights]}

    def with_pose(self, pose: Mapping[str, Any]) -> FrameSpec:
        """A copy with the camera and lights of ``pose`` (a :meth:`pose` dict)."""
        try:
            camera = Camera(**pose["camera"])
            lights = tuple(Light(**lt) for lt in pose["lights"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a frame pose needs camera and lights, got {pose!r:.200}") from exc
        return replace(self, camera=camera, lights=lights)

    def posed(self, extra: Mapping[str, Any]) -> FrameSpec:
        """The frame a scene was made in: this one, with the scene's own camera and lights
        when its ``extra`` (a :class:`Scene`'s) carries a ``frame_pose`` (jittered targets)."""
        pose = extra.get(POSE_KEY)
        return self if pose is None else self.with_pose(pose)

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
        """CLEVR's visibility threshold, 200 px at 320x240, scaled to this frame: by the
        square of the larger side, which the sensor spans (sensor fit AUTO), so that an
        object covers as many pixels per threshold at every size and aspect and a scene
        passes or fails alike at 128x128 and 480x320 (450 px there)."""
        scale = (max(self.width, self.height) / 320) ** 2
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


def gpu_present(root: str = "/") -> bool:
    """True if this machine has a GPU that Blender can render EEVEE on: an NVIDIA one
    (``/proc/driver/nvidia/gpus``) or a DRM render node of AMD or Intel. Reads the system
    only (no bpy): the command line and the farm decide the engine before any Blender."""
    import os

    nvidia = os.path.join(root, "proc/driver/nvidia/gpus")
    if os.path.isdir(nvidia) and os.listdir(nvidia):
        return True
    drm = os.path.join(root, "sys/class/drm")
    for node in os.listdir(drm) if os.path.isdir(drm) else ():
        try:
            with open(os.path.join(drm, node, "device", "vendor")) as fh:
                vendor = fh.read().strip()
        except OSError:
            continue
        if node.startswith("renderD") and vendor in ("0x10de", "0x1002", "0x8086"):
            return True
    return False


def default_engine() -> str:
    """The one rule for the engine when none is named: EEVEE (the production engine)
    where a GPU is present, else Workbench (EEVEE through software GL takes ~20 s a
    frame; Workbench ~50 ms at 128 px)."""
    return "eevee" if gpu_present() else "workbench"


def preset(name: str, gpu: bool = False) -> FrameSpec:
    """A named frame. ``clevr``: CLEVR v1.0, 480x320, Cycles with CLEVR's 512 samples, or
    EEVEE (64 samples) where a GPU is present. ``clevr-rl``: the fast RL default, 128x128,
    EEVEE (16 samples) with a GPU, else Workbench (8). ``gpu``: whether this machine has
    one (``addon.compat.cycles_device() == "GPU"``)."""
    if name == "clevr":
        return (
            FrameSpec(engine="eevee", samples=64)
            if gpu
            else FrameSpec(engine="cycles", samples=CLEVR_SAMPLES)
        )
    if name == "clevr-rl":
        engine, samples = ("eevee", 16) if gpu else ("workbench", 8)
        return FrameSpec(width=128, height=128, engine=engine, samples=samples)
    raise ValueError(f"frame preset must be one of {PRESETS}, got {name!r}")
