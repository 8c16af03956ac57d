"""Canny edges and RLRF's edge reward, in numpy.

Canny (1986): Gaussian smoothing, Sobel gradients, non-maximum suppression along four
quantised directions, then hysteresis (weak edges survive only when 8-connected to a strong
one). Thresholds are absolute, on the gradient of 0..1 luma (Sobel divided by 4, so an ideal
unblurred step of height s reads s): the same scene edge must give the same edge in the
render and the target, which per-image (Otsu / max-relative) thresholds would not.

Edge L2 follows RLRF (Rodriguez et al. 2025, "Rendering-Aware Reinforcement Learning for
Vector Graphics Generation"): Canny, 3×3 dilation, Gaussian blur, then L2 between the
two soft edge maps. We normalise the L2 by the maps' energies so that the value lies in
[0, 1]: 0 for identical edges, 1 for edges that nowhere overlap even after blurring.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence

import numpy as np

from .filters import dilate3, gaussian_blur, sobel

CANNY_SIGMA = 1.0
CANNY_LOW = 0.05
CANNY_HIGH = 0.10
EDGE_BLUR_SIGMA = 2.0
EDGE_BLUR_TAPS = 13


def _non_max_suppression(mag: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """``mag`` where it is a local maximum across the edge, 0 elsewhere."""
    angle = np.mod(np.degrees(np.arctan2(gy, gx)), 180.0)
    h, w = mag.shape[-2:]
    p = np.pad(mag, [(0, 0)] * (mag.ndim - 2) + [(1, 1), (1, 1)])

    def at(dy: int, dx: int) -> np.ndarray:
        return p[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    # Image y grows downwards, so a gradient at +45° points right-and-down.
    keep = np.zeros(mag.shape, dtype=bool)
    bins = (
        ((angle < 22.5) | (angle >= 157.5), (0, 1)),
        ((angle >= 22.5) & (angle < 67.5), (1, 1)),
        ((angle >= 67.5) & (angle < 112.5), (1, 0)),
        ((angle >= 112.5) & (angle < 157.5), (1, -1)),
    )
    for sel, (dy, dx) in bins:
        # Strict on one side, non-strict on the other: a two-pixel plateau keeps one pixel.
        keep |= sel & (mag > at(dy, dx)) & (mag >= at(-dy, -dx))
    return np.where(keep, mag, 0.0)


def canny(
    luma: np.ndarray,
    low: float = CANNY_LOW,
    high: float = CANNY_HIGH,
    sigma: float = CANNY_SIGMA,
) -> np.ndarray:
    """Boolean (..., H, W) Canny edge map of 0..1 luma stacks."""
    if not 0 <= low <= high:
        raise ValueError(f"need 0 <= low <= high, got low={low!r}, high={high!r}")
    smooth = gaussian_blur(luma, sigma) if sigma > 0 else luma
    gx, gy = sobel(smooth)
    gx, gy = gx / 4.0, gy / 4.0
    thin = _non_max_suppression(np.hypot(gx, gy), gx, gy)
    weak = thin >= low
    edges = thin >= high
    while True:  # grow strong edges through weak ones until nothing changes
        grown = dilate3(edges) & weak
        if np.array_equal(grown, edges):
            return edges
        edges = grown


def soft_edges(luma: np.ndarray) -> np.ndarray:
    """RLRF's edge map: Canny, 3×3 dilation, Gaussian blur; float (..., H, W) in 0..1."""
    thick = dilate3(canny(luma)).astype(np.float64)
    return gaussian_blur(thick, EDGE_BLUR_SIGMA, EDGE_BLUR_TAPS)


class SoftEdgeCache:
    """Soft edge maps of targets, by a key naming the target's content and size.

    In RL one target is scored against a whole group of candidates, batch after batch:
    its edge map (two thirds of the edge reward's cost when computed per call) is
    computed once. Bounded (least recently used out); the maps are read-only.
    """

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._maps: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the in-process server scores from several threads

    def __len__(self) -> int:
        return len(self._maps)

    def get(self, keys: Sequence[Hashable], luma: np.ndarray) -> np.ndarray:
        """``soft_edges(luma)`` for a (N, H, W) stack whose image i has key ``keys[i]``."""
        if len(keys) != len(luma):
            raise ValueError(f"{len(keys)} keys for {len(luma)} images")
        with self._lock:
            found = {k: self._maps[k] for k in keys if k in self._maps}
            for k in found:
                self._maps.move_to_end(k)
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            made = soft_edges(luma[todo])
            made.setflags(write=False)
            with self._lock:
                for row, i in zip(made, todo, strict=True):
                    found[keys[i]] = self._maps[keys[i]] = row
                while len(self._maps) > self.capacity:
                    self._maps.popitem(last=False)
        return np.stack([found[k] for k in keys]) if keys else soft_edges(luma)


def soft_edge_l2(ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
    """Normalised L2 between two soft edge maps (:func:`soft_edges`): in [0, 1], 0 = equal."""
    num = np.sum((ea - eb) ** 2, axis=(-2, -1))
    den = np.sum(ea * ea, axis=(-2, -1)) + np.sum(eb * eb, axis=(-2, -1))
    return np.where(den == 0, 0.0, num / np.where(den == 0, 1.0, den))


def edge_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RLRF edge L2 of two luma stacks: in [0, 1], 0 = equal edges."""
    return soft_edge_l2(soft_edges(a), soft_edges(b))
