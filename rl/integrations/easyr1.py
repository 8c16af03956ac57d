"""EasyR1: a ``worker.reward.reward_function`` (batch or sequential).

EasyR1's ``AutoRewardManager`` loads this file by path from
``worker.reward.reward_function=<path>:compute_score``, reads the module's ``REWARD_TYPE``
(``"batch"``: ``compute_score(list_of_inputs)`` once per batch; ``"sequential"``:
``compute_score(one_input)`` per response) and ``REWARD_NAME``. Each input is
``{"response", "response_length", "ground_truth"}`` (the ground truth comes from the
dataset's ``answer`` column). It puts ``score["overall"]`` at the last response token and
appends every key of every result to one list per key, so every result here has the same
keys: ``overall`` (the reward), ``format`` (1.0 when the program ran and rendered),
``accuracy`` (the reward again, EasyR1's name for the task score), every component of the
preset, ``outcome_code`` and the flags ``valid_program``, ``structural_match``, ``precise``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

try:
    from . import core
except ImportError:  # loaded by file path (verl, EasyR1, OpenRLHF do that): no parent package
    from derender.rl.integrations import core  # type: ignore[no-redef]

REWARD_NAME = "derender"
REWARD_TYPE = "batch"  # the whole batch goes to the farm in one pipelined call


def _row(scored: core.Scored) -> dict[str, float]:
    metrics = scored.metrics()
    return {
        "overall": float(scored.reward),
        "format": metrics["valid_program"],
        "accuracy": float(scored.reward),
        **metrics,
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
    rows = [_row(s) for s in scored]
    return rows[0] if single else rows
