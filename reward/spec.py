"""Reward specs: which components, with which weights, at which resolution; and presets.

Each component is turned into a term in [0, 1], higher = better, before weighting:

=============  ==============================  ===================================
component      measured value (``components``)  term
=============  ==============================  ===================================
lpips          LPIPS-Alex v0.1 distance, >= 0  1 - min(lpips, 1)
ssim           luma SSIM, [-1, 1]               max(ssim, 0)
mse            pixel MSE of 0..1 RGB, [0, 1]    1 - mse
iou            foreground IoU, [0, 1]           iou
edge_l2        RLRF edge L2, [0, 1]             1 - edge_l2
code_length    RLRF length reward, [0, 1]       code_length
valid          outcome validity, {0, .5, 1}     valid
scene_graph    scene-graph score, [0, 1]        scene_graph
svg_elements   SVG shape matching, [0, 1]       svg_elements
=============  ==============================  ===================================

reward = Σ w·term over the available terms × (Σ all w / Σ available w): the preset's formula
when everything is available, and terms that cannot be computed (LPIPS weights absent, no
masks, no scenes, no code) are dropped with the others scaled up, so the maximum (Σ w) never
changes.

Presets (the maximum reward is the sum of the weights):

* ``graph_image`` (the default) = 0.65·scene_graph + 0.1·(1−edge_l2) + 0.1·(1−LPIPS)
  + 0.05·SSIM + 0.1·valid, maximum 1.0. The scene-graph match (objects, attributes and
  positions read back from Blender) carries the ranking; edges and LPIPS check it against
  the pixels, so a program that reads back right but renders wrong does not pay. It was
  chosen on :mod:`.ladder`: oracle > one object moved 0.3 m > one object recoloured > one
  object missing > half missing > empty > syntax error, with or without the LPIPS weights.
  The empty program earns 0.15–0.22 of the oracle (SSIM of an empty frame against a
  scene is still ~0.75, which is why SSIM's weight is small, and MSE is left out: it is
  below 0.006 even for the empty frame, so 1 − MSE pays every program the same).
* ``seed``: the seed paper's formula, 0.6·(1−LPIPS) + 0.2·SSIM + 0.2·(1−MSE) + 0.1·valid,
  maximum 1.1. Kept as published; its image terms reward an empty program almost as much
  as the right one (0.9 of the oracle without LPIPS weights), so it is not the default.
* ``rlrf``: RLRF's image terms and code-length reward, maximum 1.0.
* ``scene``: scene-graph first, maximum 1.0.
* ``seed-svg``: the seed paper's SVG composite, 0.6·(1−LPIPS) + 0.2·SSIM + 0.2·IoU (IoU of
  the non-background masks), maximum 1.0; the SVG environment's default.
* ``svg-elements``: the shapes matched element by element against the target's SVG
  (:mod:`.svg_elements`) carry the ranking, checked against the pixels: 0.5·svg_elements
  + 0.2·(1−LPIPS) + 0.1·SSIM + 0.2·IoU, maximum 1.0.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

COMPONENTS: tuple[str, ...] = (
    "lpips", "ssim", "mse", "iou", "edge_l2", "code_length", "valid", "scene_graph",
    "svg_elements",
)  # fmt: skip
# Components computed from the render (or its instance masks).
PIXEL_COMPONENTS = frozenset({"lpips", "ssim", "mse", "iou", "edge_l2"})
# The smallest side AlexNet's three max-pools leave a pixel of (31; SSIM needs 11).
MIN_SIZE = 32
# Bump when a formula changes so that old and new rewards never share a hash.
FORMULA_VERSION = 1

PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        # The default: the scene-graph match, checked against the pixels (module docstring).
        "graph_image": {
            "weights": {
                "scene_graph": 0.65,
                "edge_l2": 0.1,
                "lpips": 0.1,
                "ssim": 0.05,
                "valid": 0.1,
            },
            "size": 64,
        },
        # The seed paper's reward, at 64×64, as published.
        "seed": {"weights": {"lpips": 0.6, "ssim": 0.2, "mse": 0.2, "valid": 0.1}, "size": 64},
        # RLRF's image terms (L2, edge L2, a perceptual term: LPIPS stands in for DreamSim)
        # plus its code-efficiency term.
        "rlrf": {
            "weights": {"mse": 0.35, "edge_l2": 0.35, "lpips": 0.2, "code_length": 0.1},
            "size": 128,
        },
        # Structure first: the scene-graph match, plus a small image and validity term.
        "scene": {"weights": {"scene_graph": 0.8, "ssim": 0.1, "valid": 0.1}, "size": 64},
        # No pixels at all: the read-back scene against the target's. Its steps skip the
        # render (the seed paper's "bypass Blender for most training steps").
        "graph": {"weights": {"scene_graph": 0.9, "valid": 0.1}, "size": 64},
        # The SVG environment (module docstring).
        "seed-svg": {"weights": {"lpips": 0.6, "ssim": 0.2, "iou": 0.2}, "size": 64},
        "svg-elements": {
            "weights": {"svg_elements": 0.5, "lpips": 0.2, "ssim": 0.1, "iou": 0.2},
            "size": 64,
        },
    }
)


# The preset a server, the Gymnasium env and the trainer adapters use unless told otherwise.
DEFAULT_PRESET = "graph_image"
SVG_DEFAULT_PRESET = "seed-svg"  # the same for the SVG environment
SVG_PRESETS: tuple[str, ...] = ("seed-svg", "svg-elements")  # the SVG environment's presets


def term(name: str, value: float) -> float:
    """The [0, 1], higher-is-better term of a measured component (table above)."""
    if name == "lpips":
        return 1.0 - min(max(value, 0.0), 1.0)
    if name == "ssim":
        return min(max(value, 0.0), 1.0)
    if name in ("mse", "edge_l2"):
        return 1.0 - value
    if name in COMPONENTS:
        return value
    raise ValueError(f"unknown reward component {name!r}; known: {COMPONENTS}")


@dataclass(frozen=True)
class RewardSpec:
    """Weights per component, the square scoring resolution and the LPIPS trunk.

    ``size``: images are area-resampled to size×size before the image metrics (None: native
    resolution; render and target must then match). ``lpips_trunk``: "torchvision" for the
    real weights, "random:<seed>" only for tests and timing (its hash says so).
    """

    weights: Mapping[str, float]
    size: int | None = 64
    preset: str = "custom"
    lpips_trunk: str = "torchvision"
    _identity: dict[str, str] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        weights = dict(self.weights)
        for name, w in weights.items():
            if name not in COMPONENTS:
                raise ValueError(f"unknown reward component {name!r}; known: {COMPONENTS}")
            if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
                raise ValueError(f"weight of {name!r} must be a finite number, got {w!r}")
            if w < 0:
                raise ValueError(f"weight of {name!r} must be >= 0, got {w!r}")
        if not any(w > 0 for w in weights.values()):
            raise ValueError(f"at least one weight must be > 0, got {weights!r}")
        size = self.size
        if size is not None and (
            isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE
        ):
            raise ValueError(f"size must be an int >= {MIN_SIZE} or None, got {self.size!r}")
        trunk = self.lpips_trunk
        if trunk != "torchvision" and not (trunk.startswith("random:") and trunk[7:].isdigit()):
            raise ValueError(f"lpips_trunk must be 'torchvision' or 'random:<seed>', got {trunk!r}")
        clean = {k: float(v) for k, v in sorted(weights.items()) if v > 0}
        object.__setattr__(self, "weights", MappingProxyType(clean))

    @property
    def total_weight(self) -> float:
        return sum(self.weights.values())

    @property
    def scores_without_pixels(self) -> bool:
        """True if a term other than validity is computed without the image (the scene
        graph, the code): a render-free step then still has something to score."""
        return bool(set(self.weights) - PIXEL_COMPONENTS - {"valid"})

    @property
    def needs_pixels(self) -> bool:
        """True if a term is computed from the image (or its masks): False for a preset of
        scene-graph, validity and code terms only, whose steps need no render at all."""
        return bool(set(self.weights) & PIXEL_COMPONENTS)

    def lpips_identity(self) -> str:
        """Which LPIPS weights this spec scores with: a digest label, "unavailable", "unused"."""
        if "lpips" not in self.weights:
            return "unused"
        if "lpips" not in self._identity:
            from .score import lpips_model

            model = lpips_model(self)
            self._identity["lpips"] = "unavailable" if model is None else model.identity
        return self._identity["lpips"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "weights": dict(self.weights),
            "size": self.size,
            "lpips_trunk": self.lpips_trunk,
        }

    def hash(self) -> str:
        """16 hex digits over the formula version, preset, weights, size and LPIPS weights.

        Computed once: every input is fixed once the LPIPS identity is known, and a farm's
        reward stage asks for it in every batch."""
        if "hash" not in self._identity:
            data = {**self.to_dict(), "lpips": self.lpips_identity(), "formula": FORMULA_VERSION}
            blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
            self._identity["hash"] = hashlib.sha256(blob.encode()).hexdigest()[:16]
        return self._identity["hash"]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RewardSpec:
        """From ``{"preset"?, "weights"?, "size"?, "lpips_trunk"?}``; weights extend a preset."""
        unknown = set(data) - {"preset", "weights", "size", "lpips_trunk"}
        if unknown:
            raise ValueError(f"RewardSpec has no field(s) {sorted(unknown)}")
        name = data.get("preset", "custom")
        base = dict(PRESETS[name]) if name in PRESETS else None
        if base is None and name != "custom":
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        weights = {**(base["weights"] if base else {}), **dict(data.get("weights", {}))}
        size = data.get("size", base["size"] if base else 64)
        size = None if size == "native" else size  # TOML has no null
        trunk = data.get("lpips_trunk", "torchvision")
        return cls(weights=weights, size=size, preset=name, lpips_trunk=trunk)

    @classmethod
    def from_toml(cls, path: str | Path) -> RewardSpec:
        """A spec file: top-level ``preset``, ``size`` (int or "native"), ``lpips_trunk``
        and a ``[weights]`` table."""
        import tomllib  # Python 3.11+: spec files are read where rewards are computed

        with open(path, "rb") as f:
            return cls.from_dict(tomllib.load(f))


def preset(name: str, **overrides: Any) -> RewardSpec:
    """A named preset (:data:`PRESETS`); keyword overrides: size, lpips_trunk."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return RewardSpec.from_dict({"preset": name, **overrides})
