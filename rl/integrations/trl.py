"""TRL: GRPO ``reward_funcs`` (sync and async) that also log derender's training figures.

TRL 1.16's ``GRPOTrainer._calculate_rewards`` calls ``reward_func(prompts=...,
completions=..., completion_ids=..., trainer_state=..., log_extra=..., log_metric=...,
**columns)`` where every other dataset column arrives as a list, one entry per completion;
it expects a list of floats, names the reward in its logs by ``__name__``, and awaits (with
``asyncio.gather``) functions that are coroutine functions. Completions are strings, or for
conversational datasets lists of messages. The target comes from the ``ground_truth``
column (or ``target`` / ``target_id``).

Through the ``log_metric`` hook each call logs the batch means of
:mod:`derender.reward.rates` as ``derender/valid_program``, ``derender/structural_match``
(SSIM > 0.8) and ``derender/precise`` (LPIPS < 0.1; soft-edge L2 < 0.05 where the farm has
no LPIPS weights); TRL averages them per logging step next to ``reward`` and ``kl``. Through
``log_extra`` it adds an ``outcome`` column to TRL's completions table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...reward import rates
from . import core

TARGET_COLUMNS: tuple[str, ...] = ("ground_truth", "target", "target_id")
METRIC_PREFIX = "derender/"


def _targets(kwargs: dict[str, Any], n: int) -> list[Any]:
    for column in TARGET_COLUMNS:
        if column in kwargs:
            values = list(kwargs[column])
            if len(values) != n:
                raise ValueError(f"column {column!r} has {len(values)} rows for {n} completions")
            return values
    raise ValueError(
        f"no target column: the dataset needs one of {TARGET_COLUMNS}, got {sorted(kwargs)}"
    )


def _log(scored: Sequence[core.Scored], kwargs: dict[str, Any]) -> list[float]:
    """Hands the batch's figures to TRL's hooks (when this TRL passes them); the rewards."""
    log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
    log_extra: Callable[[str, list], None] | None = kwargs.get("log_extra")
    if log_metric is not None:
        batch = rates.rates([rates.flags(s.outcome, s.components) for s in scored])
        for name, value in batch.items():
            log_metric(METRIC_PREFIX + name, value)
    if log_extra is not None:
        log_extra("outcome", [s.outcome for s in scored])
    return [s.reward for s in scored]


def derender_reward(
    prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
) -> list[float]:
    """The preset reward of each completion's script against its row's target."""
    scored = core.score(list(completions), _targets(kwargs, len(completions)))
    return _log(scored, kwargs)


async def derender_reward_async(
    prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
) -> list[float]:
    """:func:`derender_reward` as a coroutine, so TRL runs it beside other async rewards."""
    scored = await core.ascore(list(completions), _targets(kwargs, len(completions)))
    return _log(scored, kwargs)
