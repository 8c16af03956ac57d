"""EasyR1: a ``reward_function`` for ``worker.reward`` (batch or sequential type).

EasyR1's ``BatchFunctionRewardManager`` calls ``compute_score(reward_inputs)`` with a list
of ``{"response", "response_length", "ground_truth"}`` dicts and reads ``score["overall"]``
from each result, logging every key; the ``SequentialFunctionRewardManager`` calls it with
one dict and expects one result. Set ``reward_function=.../easyr1.py:compute_score``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import core


def _row(scored: core.Scored, keys: Sequence[str]) -> dict[str, float]:
    # "format" = the script ran and rendered; "accuracy" = the preset's reward.
    return {
        "overall": float(scored.reward),
        "format": scored.valid,
        "accuracy": float(scored.reward),
        **scored.metrics(keys),
    }


def compute_score(
    reward_inputs: Sequence[Mapping[str, Any]] | Mapping[str, Any], **kwargs: Any
) -> list[dict[str, float]] | dict[str, float]:
    """A list of score dicts for a list of inputs; one dict for one input."""
    if isinstance(reward_inputs, Mapping):
        return compute_score([reward_inputs], **kwargs)[0]
    scored = core.score(
        [r["response"] for r in reward_inputs], [r["ground_truth"] for r in reward_inputs]
    )
    keys = core.component_keys(scored)
    return [_row(s, keys) for s in scored]
