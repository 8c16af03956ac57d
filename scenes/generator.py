"""Seeded CLEVR scene generator with CLEVR's placement constraints and curriculum knobs.

Placement follows ``add_random_objects`` in clevr-dataset-gen exactly: each new object of
nominal size r is tried at x, y ~ U(-3, 3) until, against every placed object (x', y', r'),
``dist - r - r' >= min_dist`` (r' is the placed object's size: CLEVR's cube rule
``r /= sqrt(2)`` never fires) and no cardinal-direction separation lies in (0, margin);
after ``max_retries`` failures the whole scene is restarted. Randomness comes from
``random.Random`` seeded with a string, which is the same on every machine and Python build.

With ``jitter`` on, each scene gets CLEVR's camera and light jitter (seeded by the scene's
seed and index) and carries the exact jittered camera and lights under ``frame_pose``
(render it in ``config.frame.posed(scene.extra)``). As in CLEVR, ``pixel_coords`` are the
jittered camera's while the placement margins and ``directions`` are the un-jittered
camera's (``render_images.py`` reads the camera matrix before Blender updates it).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import universe
from .frame import POSE_KEY, FrameSpec
from .model import Scene, SceneObject
from .relations import relationships

VisibilityCheck = Callable[[Scene], bool]

MAX_SCENE_RESTARTS = 1000


class GenerationError(RuntimeError):
    """The constraints could not be met (e.g. too many large objects for the margin)."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Curriculum knobs. ``shape_colors`` restricts colours per shape (CoGenT holdouts)."""

    min_objects: int = universe.MIN_OBJECTS
    max_objects: int = universe.MAX_OBJECTS
    shapes: Sequence[str] = universe.SHAPES
    sizes: Sequence[str] = tuple(universe.SIZES)
    materials: Sequence[str] = universe.MATERIALS
    colors: Sequence[str] = tuple(universe.COLORS)
    shape_colors: Mapping[str, Sequence[str]] | None = None
    min_dist: float = universe.MIN_DIST
    margin: float = universe.MARGIN
    bounds: float = universe.PLACEMENT_BOUNDS
    max_retries: int = universe.MAX_RETRIES
    frame: FrameSpec = field(default_factory=FrameSpec)
    jitter: bool = False  # CLEVR's per-scene camera and light jitter (off for RL)

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )
        for name, allowed in (
            ("shapes", universe.SHAPES),
            ("sizes", universe.SIZES),
            ("materials", universe.MATERIALS),
            ("colors", universe.COLORS),
        ):
            values = tuple(getattr(self, name))
            bad = [v for v in values if v not in allowed]
            if not values or bad:
                raise ValueError(
                    f"GeneratorConfig.{name} must be a non-empty subset of "
                    f"{tuple(allowed)}, got {values!r}"
                )
            object.__setattr__(self, name, values)
        if self.shape_colors is not None:
            combos = {s: tuple(c) for s, c in self.shape_colors.items()}
            for shape, colors in combos.items():
                if (
                    shape not in universe.SHAPES
                    or not colors
                    or any(c not in universe.COLORS for c in colors)
                ):
                    raise ValueError(f"shape_colors[{shape!r}] is invalid: {colors!r}")
            object.__setattr__(self, "shape_colors", combos)


def enough_pixels(masks: np.ndarray, count: int, frame: FrameSpec) -> bool:
    """CLEVR's visibility rule on instance ``masks`` (ids 1..count, 0 elsewhere) rendered
    in ``frame``: every object covers at least ``frame.min_pixels_per_object()`` pixels
    (200 at 320x240, scaled with the pixel count)."""
    if count == 0:
        return True
    counts = np.bincount(np.asarray(masks).ravel(), minlength=count + 1)
    return bool(counts[1 : count + 1].min() >= frame.min_pixels_per_object())


def _try_place(
    rng: random.Random, cfg: GeneratorConfig, frame: FrameSpec, n: int
) -> list[SceneObject] | None:
    directions = cfg.frame.directions()
    cardinal = [directions[k] for k in ("left", "right", "front", "behind")]
    placed: list[SceneObject] = []
    for _ in range(n):
        size = rng.choice(cfg.sizes)
        r = universe.SIZES[size]
        for _attempt in range(cfg.max_retries):
            x = rng.uniform(-cfg.bounds, cfg.bounds)
            y = rng.uniform(-cfg.bounds, cfg.bounds)
            if all(_compatible(x, y, r, o, cardinal, cfg) for o in placed):
                break
        else:
            return None
        if cfg.shape_colors is None:
            shape = rng.choice(cfg.shapes)
            color = rng.choice(cfg.colors)
        else:
            shape = rng.choice(sorted(cfg.shape_colors))
            color = rng.choice(cfg.shape_colors[shape])
        material = rng.choice(cfg.materials)
        rotation = 2.0 * math.pi * rng.random()
        obj = SceneObject(shape, size, material, color, x, y, rotation)
        pixel = frame.pixel_coords(obj.position)
        placed.append(SceneObject(shape, size, material, color, x, y, rotation, None, pixel))
    return placed


def _compatible(
    x: float, y: float, r: float, other: SceneObject, cardinal: list, cfg: GeneratorConfig
) -> bool:
    dx, dy = x - other.x, y - other.y
    if math.hypot(dx, dy) - r - other.radius < cfg.min_dist:
        return False
    return not any(0 < dx * d[0] + dy * d[1] < cfg.margin for d in cardinal)


def generate_scene(
    seed: int,
    index: int = 0,
    config: GeneratorConfig | None = None,
    visible: VisibilityCheck | None = None,
) -> Scene:
    """Scene ``index`` of the stream ``seed``; the same arguments give the same scene.

    ``visible`` is the renderer's hook (every object has enough pixels in the scene's own
    frame, ``config.frame.posed(scene.extra)``); scenes it rejects are resampled, as CLEVR
    does after ``check_visibility``.
    """
    cfg = config or GeneratorConfig()
    rng = random.Random(f"derender-scene:{seed}:{index}")
    n = rng.randint(cfg.min_objects, cfg.max_objects)
    frame = cfg.frame.jittered(f"{seed}:{index}") if cfg.jitter else cfg.frame
    for _ in range(MAX_SCENE_RESTARTS):
        objects = _try_place(rng, cfg, frame, n)
        if objects is None:
            continue
        directions = {k: list(v) for k, v in cfg.frame.directions().items()}
        extra: dict[str, object] = {
            "split": "derender",
            "image_index": index,
            "image_filename": f"CLEVR_derender_{index:06d}.png",
            "directions": directions,
            "relationships": relationships([o.position for o in objects], directions),
        }
        if cfg.jitter:
            extra[POSE_KEY] = frame.pose()
        scene = Scene(tuple(objects), extra)
        if visible is None or visible(scene):
            return scene
    raise GenerationError(
        f"no scene with {n} objects met the constraints in {MAX_SCENE_RESTARTS} restarts "
        f"(seed={seed}, index={index})"
    )


def generate_scenes(
    seed: int,
    count: int,
    config: GeneratorConfig | None = None,
    visible: VisibilityCheck | None = None,
    start: int = 0,
) -> Iterator[Scene]:
    """Scenes ``start .. start + count - 1`` of the stream ``seed``."""
    for index in range(start, start + count):
        yield generate_scene(seed, index, config, visible)
