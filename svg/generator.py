"""Seeded 2D compositions with their ground-truth SVG: the SVG environment's targets.

``generate(seed, index, config)`` is a pure function of its arguments (Python's ``random``
seeded with a string, which hashes the same on every machine), so target ``(seed, index)``
is the same composition on every server. A composition is a list of :class:`Shape` in
paint order (later ones on top), each with integer geometry on the canvas grid, a fill
from the palette and an optional stroke; its SVG is the ground truth an oracle submits.

Curriculum knobs (:class:`SvgGeneratorConfig`): the shape count, the shape kinds, the
palette, how much a shape may overlap the ones before it, and how often shapes get a
stroke; and the kind of target: ``shapes`` (the default), ``icons`` (one plain icon of the
bundled Tabler set, :mod:`.icons`, stroked in a palette colour at a seeded place and scale)
or ``mixed`` (a seeded choice between the two per target). The perturbations
(:func:`moved`, :func:`recoloured`, :func:`without`) are what the reward ladder and the
search baseline use.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from . import icons
from .canvas import SvgCanvas

# The kinds of shape the generator draws (the policy also allows <polyline>).
SHAPES: tuple[str, ...] = ("circle", "rect", "ellipse", "polygon", "line", "path")
KINDS: tuple[str, ...] = ("shapes", "icons", "mixed")
ICON_STEP = 12  # icon sides are multiples of this (px), so Tabler's width 2 scales to whole px

PALETTES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "basic": ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4",
                  "#46f0f0", "#f032e6", "#000000", "#808080"),
        "pastel": ("#fbb4ae", "#b3cde3", "#ccebc5", "#decbe4", "#fed9a6", "#ffffcc"),
        "grey": ("#000000", "#404040", "#808080", "#c0c0c0"),
    }
)  # fmt: skip


class SvgGenerationError(ValueError):
    """The knobs ask for a composition the generator cannot place; names the knob."""


@dataclass(frozen=True)
class SvgGeneratorConfig:
    """The curriculum knobs of the SVG targets."""

    canvas: SvgCanvas = field(default_factory=SvgCanvas)
    min_shapes: int = 2
    max_shapes: int = 5
    shapes: tuple[str, ...] = SHAPES
    palette: str = "basic"
    overlap: float = 0.3  # the most of a new shape's box earlier boxes may cover, 0..1
    stroke_probability: float = 0.3
    max_tries: int = 200  # placements tried per shape before giving up
    kind: str = "shapes"  # one of KINDS
    icons: tuple[str, ...] = ()  # the bundled icons an icon target draws from; () is all

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SvgGenerationError(f"kind must be one of {KINDS}, got {self.kind!r}")
        object.__setattr__(self, "icons", tuple(self.icons))
        unknown_icons = sorted(set(self.icons) - set(icons.names()))
        if unknown_icons:
            raise SvgGenerationError(
                f"icons must be some of the bundled ones (derender.svg.icons.names()), "
                f"got unknown {unknown_icons!r}"
            )
        if self.kind != "shapes" and not icon_sizes(self.canvas):
            raise SvgGenerationError(
                f"icon targets need a canvas side of at least {ICON_STEP} px, got "
                f"{self.canvas.width}x{self.canvas.height}"
            )
        if not 1 <= self.min_shapes <= self.max_shapes <= 64:
            raise SvgGenerationError(
                f"need 1 <= min_shapes <= max_shapes <= 64, got {self.min_shapes}, "
                f"{self.max_shapes}"
            )
        unknown = set(self.shapes) - set(SHAPES)
        if unknown or not self.shapes:
            raise SvgGenerationError(f"shapes must be some of {SHAPES}, got {self.shapes!r}")
        if self.palette not in PALETTES:
            raise SvgGenerationError(
                f"palette must be one of {sorted(PALETTES)}, got {self.palette!r}"
            )
        for name in ("overlap", "stroke_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SvgGenerationError(f"{name} must be in 0..1, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Shape:
    """One element: its tag, integer geometry (per tag, see :func:`attributes`), paint.

    Tag ``icon`` is a bundled icon (``icon`` names it) in the box ``geometry = (x, y,
    side)``, stroked ``stroke`` at ``stroke_width`` px; it writes one path per icon element."""

    tag: str
    geometry: tuple[int, ...]
    fill: str | None
    stroke: str | None = None
    stroke_width: int = 0
    icon: str | None = None  # tag "icon": the bundled icon, drawn in the box (x, y, side)

    def __post_init__(self) -> None:
        if (self.tag == "icon") != (self.icon is not None) or (self.icon and not self.stroke):
            raise SvgGenerationError(
                f"a shape of tag 'icon' needs an icon name and a stroke (and only it an "
                f"icon): got tag {self.tag!r}, icon {self.icon!r}, stroke {self.stroke!r}"
            )

    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the geometry (strokes not included)."""
        g = self.geometry
        if self.tag == "icon":
            return (g[0], g[1], g[0] + g[2], g[1] + g[2])
        if self.tag == "circle":
            return (g[0] - g[2], g[1] - g[2], g[0] + g[2], g[1] + g[2])
        if self.tag == "ellipse":
            return (g[0] - g[2], g[1] - g[3], g[0] + g[2], g[1] + g[3])
        if self.tag == "rect":
            return (g[0], g[1], g[0] + g[2], g[1] + g[3])
        xs, ys = g[0::2], g[1::2]
        return (min(xs), min(ys), max(xs), max(ys))

    def attributes(self) -> list[tuple[str, str]]:
        g = [str(v) for v in self.geometry]
        geometry: list[tuple[str, str]]
        if self.tag == "circle":
            geometry = [("cx", g[0]), ("cy", g[1]), ("r", g[2])]
        elif self.tag == "ellipse":
            geometry = [("cx", g[0]), ("cy", g[1]), ("rx", g[2]), ("ry", g[3])]
        elif self.tag == "rect":
            geometry = [("x", g[0]), ("y", g[1]), ("width", g[2]), ("height", g[3])]
        elif self.tag == "line":
            geometry = [("x1", g[0]), ("y1", g[1]), ("x2", g[2]), ("y2", g[3])]
        elif self.tag == "polygon":
            pairs = " ".join(f"{g[i]},{g[i + 1]}" for i in range(0, len(g), 2))
            geometry = [("points", pairs)]
        else:  # path: a triangle with one curved side
            geometry = [("d", f"M{g[0]} {g[1]} Q{g[2]} {g[3]} {g[4]} {g[5]} L{g[6]} {g[7]} Z")]
        paint = [("fill", self.fill or "none")]
        if self.stroke is not None:
            paint += [("stroke", self.stroke), ("stroke-width", str(self.stroke_width))]
        return geometry + paint

    def to_svg(self) -> str:
        if self.icon is not None:
            x, y, side = self.geometry
            drawn = icons.place(self.icon, x, y, side, self.stroke or "", self.stroke_width)
            return "\n  ".join(drawn)
        return f"<{self.tag} " + " ".join(f'{k}="{v}"' for k, v in self.attributes()) + "/>"


@dataclass(frozen=True)
class Composition:
    """Shapes in paint order on a canvas; :meth:`to_svg` is the ground truth."""

    shapes: tuple[Shape, ...]
    canvas: SvgCanvas = field(default_factory=SvgCanvas)

    def to_svg(self) -> str:
        w, h = self.canvas.width, self.canvas.height
        body = "".join(f"  {s.to_svg()}\n" for s in self.shapes)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}">\n{body}</svg>\n'
        )


def _covered(box: Sequence[float], others: Sequence[Sequence[float]]) -> float:
    """The largest fraction of ``box`` any one of ``others`` covers."""
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    worst = 0.0
    for o in others:
        w = min(box[2], o[2]) - max(box[0], o[0])
        h = min(box[3], o[3]) - max(box[1], o[1])
        if w > 0 and h > 0:
            worst = max(worst, w * h / area)
    return worst


def _geometry(tag: str, rng: random.Random, w: int, h: int) -> tuple[int, ...]:
    lo, hi = max(3, min(w, h) // 12), max(4, min(w, h) // 4)
    size = rng.randint(lo, hi)
    cx, cy = rng.randint(size, w - size), rng.randint(size, h - size)
    if tag == "circle":
        return (cx, cy, size)
    if tag == "ellipse":
        return (cx, cy, size, rng.randint(max(2, size // 2), size))
    if tag == "rect":
        return (cx - size, cy - size, 2 * size, rng.randint(size, 2 * size))
    if tag == "line":
        angle = rng.uniform(0, math.pi)
        dx, dy = round(size * math.cos(angle)), round(size * math.sin(angle))
        return (cx - dx, cy - dy, cx + dx, cy + dy)
    corners = rng.randint(3, 6) if tag == "polygon" else 4
    start = rng.uniform(0, 2 * math.pi)
    points: list[int] = []
    for k in range(corners):
        angle = start + 2 * math.pi * k / corners
        radius = size * rng.uniform(0.6, 1.0)
        points += [round(cx + radius * math.cos(angle)), round(cy + radius * math.sin(angle))]
    return tuple(points)


def icon_sizes(canvas: SvgCanvas) -> tuple[int, ...]:
    """The sides an icon target may have on ``canvas``: multiples of ICON_STEP from a
    third of the shorter canvas side up to all of it (none on a canvas under ICON_STEP)."""
    side = min(canvas.width, canvas.height)
    low = max(1, -(-side // (3 * ICON_STEP)))
    return tuple(k * ICON_STEP for k in range(low, side // ICON_STEP + 1))


def _icon(rng: random.Random, config: SvgGeneratorConfig) -> Shape:
    """One icon of the config's set at a seeded side, place and palette colour; Tabler's
    stroke width (2 of its 24 units) scaled to the side."""
    name = rng.choice(config.icons or icons.names())
    side = rng.choice(icon_sizes(config.canvas))
    x = rng.randint(0, config.canvas.width - side)
    y = rng.randint(0, config.canvas.height - side)
    colour = rng.choice(PALETTES[config.palette])
    width = side * icons.STROKE_WIDTH // icons.VIEWBOX
    return Shape("icon", (x, y, side), None, colour, width, icon=name)


def generate(seed: int, index: int = 0, config: SvgGeneratorConfig | None = None) -> Composition:
    """Composition ``index`` of the stream ``seed`` (see the module docstring)."""
    config = config or SvgGeneratorConfig()
    rng = random.Random(f"derender-svg:{seed}:{index}")
    if config.kind == "icons" or (config.kind == "mixed" and rng.random() < 0.5):
        return Composition((_icon(rng, config),), config.canvas)
    w, h = config.canvas.width, config.canvas.height
    palette = PALETTES[config.palette]
    shapes: list[Shape] = []
    boxes: list[tuple[float, float, float, float]] = []
    for _ in range(rng.randint(config.min_shapes, config.max_shapes)):
        tag = rng.choice(config.shapes)
        for _try in range(config.max_tries):
            geometry = _geometry(tag, rng, w, h)
            candidate = Shape(tag, geometry, None)
            if _covered(candidate.box(), boxes) <= config.overlap:
                break
        else:
            raise SvgGenerationError(
                f"could not place shape {len(shapes) + 1} with overlap <= {config.overlap} "
                f"in {config.max_tries} tries: lower max_shapes or raise overlap"
            )
        stroke = rng.random() < config.stroke_probability or tag == "line"
        fill = None if tag == "line" else rng.choice(palette)
        colour = rng.choice([c for c in palette if c != fill]) if stroke else None
        width = rng.randint(1, 3) if stroke else 0
        shapes.append(Shape(tag, geometry, fill, colour, width))
        boxes.append(shapes[-1].box())
    return Composition(tuple(shapes), config.canvas)


def _shifted(shape: Shape, dx: int, dy: int) -> Shape:
    g = list(shape.geometry)
    boxed = shape.tag in ("circle", "ellipse", "rect", "icon")  # one anchor point
    pairs = range(0, 2, 2) if boxed else range(0, len(g), 2)
    for i in pairs:
        g[i], g[i + 1] = g[i] + dx, g[i + 1] + dy
    return replace(shape, geometry=tuple(g))


def moved(comp: Composition, i: int, dx: int, dy: int) -> Composition:
    """Shape ``i`` moved by (dx, dy) pixels."""
    new = _shifted(comp.shapes[i], dx, dy)
    return replace(comp, shapes=(*comp.shapes[:i], new, *comp.shapes[i + 1 :]))


def recoloured(comp: Composition, i: int, colour: str) -> Composition:
    """Shape ``i`` painted ``colour`` (its fill, or its stroke for a line)."""
    s = comp.shapes[i]
    new = replace(s, stroke=colour) if s.fill is None else replace(s, fill=colour)
    return replace(comp, shapes=(*comp.shapes[:i], new, *comp.shapes[i + 1 :]))


def without(comp: Composition, i: int) -> Composition:
    """The composition with shape ``i`` left out."""
    return replace(comp, shapes=comp.shapes[:i] + comp.shapes[i + 1 :])
