"""TRL: GRPO ``reward_funcs`` (sync and async).

``GRPOTrainer`` calls ``reward_func(prompts=..., completions=..., completion_ids=...,
trainer_state=..., **columns)`` where every other dataset column arrives as a list, one
entry per completion; it expects a list of floats, names the reward in its logs by
``__name__``, and awaits (with ``asyncio.gather``) functions for which
``asyncio.iscoroutinefunction`` is true. Completions are strings, or for conversational
datasets lists of messages. The target comes from the ``ground_truth`` column (or
``target`` / ``target_id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import core

TARGET_COLUMNS: tuple[str, ...] = ("ground_truth", "target", "target_id")


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


def derender_reward(
    prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
) -> list[float]:
    """The preset reward of each completion's script against its row's target."""
    scored = core.score(list(completions), _targets(kwargs, len(completions)))
    return [s.reward for s in scored]


async def derender_reward_async(
    prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **kwargs: Any
) -> list[float]:
    """:func:`derender_reward` as a coroutine, so TRL runs it beside other async rewards."""
    scored = await core.ascore(list(completions), _targets(kwargs, len(completions)))
    return [s.reward for s in scored]
