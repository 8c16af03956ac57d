"""A per-pixel error image to show an agent in multi-turn refinement.

Dark where render and target agree, through purple and orange to pale yellow where they
differ most. The error scale is absolute (RMS over RGB of 0..1 pixels, square-rooted so that
small misplacements stay visible), never normalised per image: the same colour means the
same error in every turn. A faint copy of the target's luma underneath keeps the scene
recognisable.
"""

from __future__ import annotations

import numpy as np

from . import image

# (position, RGB) anchors of an inferno-like ramp.
_RAMP_AT = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_RAMP_RGB = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64
)
UNDERLAY = 0.25  # weight of the target's luma under the colours


def error_map(render: np.ndarray, target: np.ndarray) -> np.ndarray:
    """H×W per-pixel RMS error over RGB, in [0, 1]."""
    a, b = image.as_float(render), image.as_float(target)
    if a.shape != b.shape:
        raise ValueError(f"render {a.shape} and target {b.shape} differ in shape")
    return np.sqrt(np.mean((a - b) ** 2, axis=-1))


def heatmap(render: np.ndarray, target: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 error heatmap of a render against its target (same size)."""
    level = np.sqrt(error_map(render, target))
    rgb = np.stack([np.interp(level, _RAMP_AT, _RAMP_RGB[:, c]) for c in range(3)], axis=-1)
    under = image.luminance(image.as_float(target))[..., None] * 255.0
    out = (1.0 - UNDERLAY) * rgb + UNDERLAY * under
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
