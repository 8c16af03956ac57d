"""EasyR1: a ``reward_function`` for ``worker.reward`` (batch or sequential type).

EasyR1's ``BatchFunctionRewardManager`` calls ``compute_score(reward_inputs)`` with a list
of ``{"response", "response_length", "ground_truth"}`` dicts and reads ``score["overall"]``
from each result, logging every key; the ``SequentialFunctionRewardManager`` calls it with
one dict and expects one result. Set ``reward_function=.../easyr1.py:compute_score``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

try:
    from . import core
except ImportError:  # loaded by file path (verl, EasyR1, OpenRLHF do that): no parent package
    from derender.protocol.integrations import core  # type: ignore[no-redef]


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
    single = isinstance(reward_inputs, Mapping)
    inputs: list[Mapping[str, Any]] = (
        [reward_inputs] if isinstance(reward_inputs, Mapping) else list(reward_inputs)
    )
    scored = core.score([r["response"] for r in inputs], [r["ground_truth"] for r in inputs])
    keys = core.component_keys(scored)
    rows = [_row(s, keys) for s in scored]
    return rows[0] if single else rows
