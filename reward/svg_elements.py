"""Element-level structural reward for the SVG environment: match drawn shapes.

The SVG counterpart of :mod:`.scene_graph`. Each side is a list of shape descriptors as
``svg.render`` returns them (``{"tag", "fill", "stroke", "bbox"}``: RGBA floats or None,
a box in canvas pixels). A pair's similarity in [0, 1] is

    sim = 0.2 · [same tag] + 0.4 · exp(-(d / 8 px)²) · box overlap + 0.4 · paint agreement

with d the distance between the box centres, the box overlap the IoU of the two boxes
(1 for two degenerate boxes at one place) and the paint agreement 1 minus the mean
absolute RGBA difference of fill and of stroke (a missing paint against a present one
counts as fully different). An exact Hungarian matching maximises the summed similarity;

    score = Σ sim(matched pairs) / max(n_candidate, n_target)   (1 when both are empty)

so a missing or an extra shape costs 1/n. Numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .assignment import linear_sum_assignment

POSITION_SCALE = 8.0  # px
W_TAG, W_BOX, W_PAINT = 0.2, 0.4, 0.4

Descriptor = Mapping[str, Any]


def _paint(a: Sequence[float] | None, b: Sequence[float] | None) -> float:
    if a is None and b is None:
        return 1.0
    if a is None or b is None:
        return 0.0
    return 1.0 - float(np.mean(np.abs(np.asarray(a, float) - np.asarray(b, float))))


def _box(a: Sequence[float], b: Sequence[float]) -> float:
    ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
    cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    near = float(np.exp(-((np.linalg.norm(ca - cb) / POSITION_SCALE) ** 2)))
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    overlap = inter / union if union > 0 else 1.0 if near > 0.99 else 0.0
    return near * overlap


def similarity(a: Descriptor, b: Descriptor) -> float:
    """The similarity of two shape descriptors (module docstring)."""
    paint = 0.5 * (_paint(a.get("fill"), b.get("fill")) + _paint(a.get("stroke"), b.get("stroke")))
    tag = float(a.get("tag") == b.get("tag"))
    return W_TAG * tag + W_BOX * _box(a["bbox"], b["bbox"]) + W_PAINT * paint


def svg_elements_score(candidate: Sequence[Descriptor], target: Sequence[Descriptor]) -> float:
    """The structural score in [0, 1] of ``candidate``'s shapes against ``target``'s."""
    if not candidate and not target:
        return 1.0
    if not candidate or not target:
        return 0.0
    sim = np.array([[similarity(a, b) for b in target] for a in candidate])
    rows, cols = linear_sum_assignment(-sim)
    return min(1.0, float(sim[rows, cols].sum()) / max(len(candidate), len(target)))
