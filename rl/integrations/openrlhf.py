"""OpenRLHF: a ``--reward.remote_url /path/to/openrlhf.py`` custom reward function.

OpenRLHF 0.11's ``SingleTurnAgentExecutor`` (inside each vLLM engine actor) loads the file
with ``spec_from_file_location("reward_func", path)`` and calls
``reward_func(queries, prompts, labels)`` in ``asyncio.to_thread``, one query per call and
many calls at once: ``queries`` are prompt + response decoded with special tokens,
``prompts`` the prompts, ``labels`` the ``--data.label_key`` column (here: the ground truth
naming the target). It reads ``rewards`` (advantages), ``scores`` (dynamic filtering) and
``extra_logs`` (one value per query, averaged into the training logs) from the returned
dict, so every result has the same ``extra_logs`` keys: every component of the preset,
``outcome_code`` and the flags ``valid_program``, ``structural_match``, ``precise``.
Concurrent calls are pipelined to the farm, one socket per thread. Workers find the farm
through ``DERENDER_ADDRESS`` (pass it in Ray's ``runtime_env``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from . import core
except ImportError:  # loaded by file path (verl, EasyR1, OpenRLHF do that): no parent package
    from derender.rl.integrations import core  # type: ignore[no-redef]


def _response(query: str, prompt: str) -> str:
    # The prompt may itself show code, so only what follows it is the answer.
    at = query.find(prompt) if prompt else -1
    return query[at + len(prompt) :] if at >= 0 else query


def reward_func(
    queries: Sequence[str], prompts: Sequence[str], labels: Sequence[Any], **kwargs: Any
) -> dict[str, Any]:
    """``{"rewards": tensor, "scores": tensor, "extra_logs": {name: tensor}}``."""
    import torch

    responses = [_response(q, p) for q, p in zip(queries, prompts, strict=True)]
    scored = core.score(responses, list(labels))
    rows = [s.metrics() for s in scored]
    rewards = torch.tensor([s.reward for s in scored], dtype=torch.float32)
    keys = list(rows[0]) if rows else []
    logs = {k: torch.tensor([r[k] for r in rows], dtype=torch.float32) for k in keys}
    return {"rewards": rewards, "scores": rewards.clone(), "extra_logs": logs}
