"""verl: ``custom_reward_function`` entry points (per sample and batched).

verl's ``NaiveRewardManager`` calls ``compute_score(data_source=..., solution_str=...,
ground_truth=..., extra_info=...)`` once per response and uses ``result["score"]``,
logging the other keys; its ``BatchRewardManager`` calls ``compute_score(data_sources=...,
solution_strs=..., ground_truths=..., extra_infos=...)`` once per batch. Point
``custom_reward_function.path`` at this file and ``name`` at ``compute_score`` or
``compute_score_batch`` (the batched form sends the whole batch to the farm in one go).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from . import core
except ImportError:  # loaded by file path (verl, EasyR1, OpenRLHF do that): no parent package
    from derender.protocol.integrations import core  # type: ignore[no-redef]


def _row(scored: core.Scored, keys: Sequence[str]) -> dict[str, float]:
    return {"score": float(scored.reward), **scored.metrics(keys)}


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    **kwargs: Any,
) -> dict[str, float]:
    """``{"score": reward, "valid": 0/1, <component>: value, ...}`` for one response."""
    (scored,) = core.score([solution_str], [ground_truth])
    return _row(scored, core.component_keys([scored]))


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[dict[str, float]]:
    """One dict per response (same keys for all, as verl's extra-info logging needs)."""
    scored = core.score(list(solution_strs), list(ground_truths))
    keys = core.component_keys(scored)
    return [_row(s, keys) for s in scored]
