"""verl: ``reward.custom_reward_function`` entry points (per response and batched).

verl 0.9's reward loop (``RewardLoopManager`` → ``RewardLoopWorker`` → the ``naive`` reward
manager) loads this file by path from ``reward.custom_reward_function.path`` and calls the
function named by ``reward.custom_reward_function.name`` once per response, each call in an
executor thread::

    compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)

It uses ``result["score"]`` as the reward and stacks every other key across the batch by
the keys of the first result, so every result here has the same keys whatever its outcome:
``score``, every component of the preset, ``outcome_code`` and the flags
``valid_program``, ``structural_match``, ``precise`` (whose means verl's validation metrics
report). Concurrent calls from the executor threads are pipelined to the farm, one socket
per thread. ``compute_score_batch`` serves managers that pass whole batches
(``data_sources=, solution_strs=, ground_truths=, extra_infos=``) and sends them in one
pipelined go.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from . import core
except ImportError:  # loaded by file path (verl, EasyR1, OpenRLHF do that): no parent package
    from derender.rl.integrations import core  # type: ignore[no-redef]


def _row(scored: core.Scored) -> dict[str, float]:
    return {"score": float(scored.reward), **scored.metrics()}


def compute_score(
    data_source: Any,
    solution_str: str,
    ground_truth: Any,
    extra_info: Any = None,
    **kwargs: Any,
) -> dict[str, float]:
    """The result row of one response (module docstring)."""
    (scored,) = core.score([solution_str], [ground_truth])
    return _row(scored)


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[dict[str, float]]:
    """One result row per response, all with the same keys."""
    return [_row(s) for s in core.score(list(solution_strs), list(ground_truths))]
