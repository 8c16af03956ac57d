"""OpenRLHF: a ``--remote_rm_url /path/to/openrlhf.py`` custom reward function.

OpenRLHF imports the file, wraps ``reward_func`` in ``ray.remote`` and calls
``reward_func(queries, prompts, labels)``: ``queries`` are prompt + response decoded with
special tokens, ``prompts`` the prompts, ``labels`` the ``--label_key`` column (here: the
ground truth naming the target). It reads ``rewards`` (advantages), ``scores`` (dynamic
filtering) and ``extra_logs`` from the returned dict. Workers find the farm through the
``DERENDER_ADDRESS`` environment variable (pass it in Ray's ``runtime_env``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from . import core
except ImportError:  # loaded by file path (verl, EasyR1, OpenRLHF do that): no parent package
    from derender.protocol.integrations import core  # type: ignore[no-redef]


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
    keys = core.component_keys(scored)
    rewards = torch.tensor([s.reward for s in scored], dtype=torch.float32)
    logs = {k: torch.tensor([s.metrics(keys)[k] for s in scored]) for k in ["valid", *keys]}
    return {"rewards": rewards, "scores": rewards.clone(), "extra_logs": logs}
