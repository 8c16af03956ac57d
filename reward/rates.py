"""The three figures the seed paper's roadmap tracks in training, per result and per batch.

* ``valid_program``: the program ran to the end and rendered (outcome ``ok``).
* ``structural_match``: SSIM > 0.8 against the target.
* ``precise``: LPIPS < 0.1. Where LPIPS is unavailable on the server (no AlexNet weights:
  its component is NaN in every result), soft-edge L2 < 0.05 stands in: the other term
  that compares the silhouettes' geometry pixel by pixel (on the preset ladder a 0.3 m move
  scores 0.005 median, one missing object 0.03, half missing 0.32).

Each is a per-result flag (1.0 or 0.0; NaN when the preset has neither component), so that a
trainer that averages a batch's extra keys (verl, OpenRLHF) logs the rate; :func:`rates`
averages a batch for trainers that log scalars (TRL). A result that did not render carries
the worst component values, so it counts as neither structural nor precise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

STRUCTURAL_SSIM = 0.8
PRECISE_LPIPS = 0.1
PRECISE_EDGE_L2 = 0.05
FLAGS: tuple[str, ...] = ("valid_program", "structural_match", "precise")


def _below(components: Mapping[str, float], name: str, threshold: float) -> float | None:
    value = components.get(name, math.nan)
    return None if math.isnan(value) else float(value < threshold)


def flags(outcome: str, components: Mapping[str, float]) -> dict[str, float]:
    """The :data:`FLAGS` of one result (module docstring)."""
    ssim = components.get("ssim", math.nan)
    precise = _below(components, "lpips", PRECISE_LPIPS)
    if precise is None:
        precise = _below(components, "edge_l2", PRECISE_EDGE_L2)
    return {
        "valid_program": 1.0 if outcome == "ok" else 0.0,
        "structural_match": math.nan if math.isnan(ssim) else float(ssim > STRUCTURAL_SSIM),
        "precise": math.nan if precise is None else precise,
    }


def rates(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The mean of each flag over a batch of :func:`flags` rows; a flag that is NaN in every
    row (its components are not in the preset) is left out."""
    out = {}
    for name in FLAGS:
        values = [r[name] for r in rows if not math.isnan(r[name])]
        if values:
            out[name] = sum(values) / len(values)
    return out
