"""Render an untrusted SVG document to an RGB array: the policy, then cairosvg, on a deadline.

:func:`render` never raises for bad input: a document the policy refuses, one cairosvg
cannot draw, or one that runs past the deadline comes back as an :class:`SvgRender` with
its sandbox outcome and a message, like a failed bpy script. cairosvg sees only the tree
the policy validated (serialised again, so what was checked is what is drawn) and a
``url_fetcher`` that refuses everything, so even a reference the policy missed fetches
nothing. The raster is always the canvas size: the document's own ``width``/``height``
scale it, never enlarge the surface.

The render also returns the document's foreground mask (alpha > 0, as ``int32`` 0/1) and
its shapes' descriptors (tag, fill, stroke, bounding box in canvas pixels, transforms
ignored), which the element-level structural reward matches against the target's
(``reward.svg_elements``): the broker scores from them and never parses agent SVG itself.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .canvas import SvgCanvas
from .policy import (
    DEFAULT_LIMITS,
    SHAPES,
    SVG_NS,
    XLINK_NS,
    SvgLimits,
    SvgRefused,
    SvgSandboxViolation,
    SvgTimeout,
    check,
)

DEFAULT_CANVAS = SvgCanvas()
ET.register_namespace("svg", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)


class FetchRefused(SvgSandboxViolation):
    """cairosvg asked for an external resource (the policy should have refused it first)."""


def refuse_fetch(url: str, resource_type: str) -> bytes:
    """cairosvg's ``url_fetcher``: nothing is ever fetched, from anywhere."""
    raise FetchRefused(f"fetching {resource_type} from {url!r:.80} is not allowed")


@dataclass(frozen=True)
class SvgRender:
    """What one document rendered to, or why not (``image`` None unless outcome ``ok``)."""

    outcome: str
    message: str = ""
    image: np.ndarray | None = None  # H×W×3 uint8 over the canvas background
    masks: np.ndarray | None = None  # H×W int32: 1 where the document drew, 0 elsewhere
    elements: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`SvgTimeout` in the calling code after ``seconds`` (SIGALRM).

    Only the main thread receives signals; elsewhere (a caller's thread) there is no
    in-process deadline and the farm's hard deadline, which kills the worker, is the
    bound. cairo's own C calls are bounded by the policy's limits, and the alarm fires
    between them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise SvgTimeout(f"the render ran past its deadline of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@functools.lru_cache(maxsize=1)
def _surface_class() -> Any:
    from cairosvg.surface import PNGSurface

    class ArraySurface(PNGSurface):
        """cairosvg's raster surface, kept in memory: no PNG is encoded."""

        def finish(self) -> None:
            self.cairo.flush()

    return ArraySurface


def _rgba(value: Any) -> list[float] | None:
    """A paint as RGBA floats in 0..1; None for ``none`` and for paint servers."""
    from cairosvg.colors import color

    if value is None or str(value).strip().startswith("url"):
        return None
    rgba = color(str(value))
    return None if rgba[3] == 0 else [round(float(c), 4) for c in rgba]


def _descriptors(surface: Any, tree: Any, scale: tuple[float, float]) -> list[dict[str, Any]]:
    """Each drawn shape's tag, fill, stroke and bounding box (canvas px), in paint order."""
    from cairosvg.bounding_box import calculate_bounding_box

    out: list[dict[str, Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.tag in ("defs", "style", "title", "desc", "linearGradient", "radialGradient"):
            continue
        if node.tag in SHAPES:
            box = calculate_bounding_box(surface, node)
            if box is not None and all(np.isfinite(box)):
                x, y, w, h = box
                sx, sy = scale
                stroke = _rgba(node.get("stroke"))
                out.append(
                    {
                        "tag": node.tag,
                        "fill": _rgba(node.get("fill", "black")),
                        "stroke": stroke,
                        "bbox": [round(v, 3) for v in (x * sx, y * sy, (x + w) * sx, (y + h) * sy)],
                    }
                )
        stack.extend(reversed(node.children))
    return out


def _composite(surface: Any, canvas: SvgCanvas) -> tuple[np.ndarray, np.ndarray]:
    """(RGB over the background, foreground mask) from cairo's premultiplied BGRA."""
    h, w = canvas.height, canvas.width
    data = np.frombuffer(surface.cairo.get_data(), np.uint8)
    bgra = data.reshape(h, surface.cairo.get_stride() // 4, 4)[:, :w]
    alpha = bgra[..., 3:4].astype(np.uint16)
    background = np.array(canvas.background, np.uint16)
    rgb = bgra[..., 2::-1].astype(np.uint16) + (background * (255 - alpha) + 127) // 255
    return np.minimum(rgb, 255).astype(np.uint8), (alpha[..., 0] > 0).astype(np.int32)


def render(
    document: str | bytes,
    canvas: SvgCanvas = DEFAULT_CANVAS,
    limits: SvgLimits = DEFAULT_LIMITS,
    elements: bool = True,
) -> SvgRender:
    """Render ``document`` on ``canvas``; see the module docstring. Never raises for input."""
    from cairosvg.parser import Tree

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    try:
        with deadline(limits.deadline_s):
            root = check(document, limits)
            timings["check"] = time.perf_counter() - t0
            clean = ET.tostring(root, encoding="utf-8")
            tree = Tree(bytestring=clean, url_fetcher=refuse_fetch)
            surface = _surface_class()(
                tree, None, 96, output_width=canvas.width, output_height=canvas.height
            )
            surface.finish()
            image, masks = _composite(surface, canvas)
            shapes: list[dict[str, Any]] = []
            if elements:
                view = [float(v) for v in (root.get("viewBox") or "").replace(",", " ").split()]
                vw, vh = (view[2], view[3]) if len(view) == 4 and view[2] and view[3] else (0, 0)
                scale = (canvas.width / vw, canvas.height / vh) if vw else (1.0, 1.0)
                shapes = _descriptors(surface, tree, scale)
    except SvgRefused as exc:
        return SvgRender(exc.outcome, str(exc), timings={"render": time.perf_counter() - t0})
    except RecursionError:
        return SvgRender("resource_limit", "the document nests too deeply for the renderer")
    except MemoryError:
        return SvgRender("resource_limit", "the render ran out of memory")
    except Exception as exc:  # cairosvg on values the policy let through (a bad path ...)
        message = f"cairosvg could not draw the document: {type(exc).__name__}: {exc}"
        elapsed = {"render": time.perf_counter() - t0}
        return SvgRender("render_error", message[:500], timings=elapsed)
    timings["render"] = time.perf_counter() - t0
    return SvgRender("ok", "", image, masks, shapes, timings)
