"""The one implementation behind every trainer adapter: completions + ground truths -> rewards.

A trainer hands over model completions and, per sample, a ground truth naming the target
(JSON ``{"target": {"seed": 3, "index": 0}}``, a bare target spec, or a ``t-…`` target id).
:class:`RewardClient` extracts each script (:func:`..prompt.extract_script`), sends all of
them as pipelined ``step`` requests (``Client.step_many``, so every farm worker is busy) to
a farm or ``derender serve``, and returns one :class:`Scored` per completion. The adapters
in this package only translate call shapes.

The address comes from :func:`configure` or the ``DERENDER_ADDRESS`` environment variable
(which is what reaches Ray workers and trainer subprocesses); ``DERENDER_PRESET`` picks the
reward preset the same way.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..messages import Limits, TargetSpec, parse_target, target_to_wire
from ..prompt import extract_script

ADDRESS_VAR = "DERENDER_ADDRESS"
PRESET_VAR = "DERENDER_PRESET"
TIMEOUT_VAR = "DERENDER_TIMEOUT"


class ConfigurationError(RuntimeError):
    """No farm address: neither :func:`configure` was called nor DERENDER_ADDRESS set."""


class RewardRequestError(RuntimeError):
    """The farm could not score an item (e.g. an evicted target id); names the item."""


@dataclass(frozen=True)
class Scored:
    """One completion's reward with what a trainer wants to log next to it."""

    reward: float
    outcome: str
    components: dict[str, float] = field(default_factory=dict)
    message: str = ""

    @property
    def valid(self) -> float:
        """1.0 when the script ran and rendered, else 0.0 (the usual 'format' signal)."""
        return 1.0 if self.outcome == "ok" else 0.0

    def metrics(self, keys: Sequence[str] = ()) -> dict[str, float]:
        """``valid`` and the components; ``keys`` pads missing components with NaN so that
        every sample of a batch logs the same keys (verl and EasyR1 need that)."""
        out = {"valid": self.valid}
        for name in list(keys) or sorted(self.components):
            out[name] = float(self.components.get(name, math.nan))
        return out


def component_keys(scored: Sequence[Scored]) -> list[str]:
    """The union of component names of a batch, sorted."""
    return sorted({k for s in scored for k in s.components})


def parse_ground_truth(ground_truth: Any) -> TargetSpec:
    """The target named by a dataset's ground truth; ValueError names a bad one.

    Accepted: a target id string ``t-…``; a JSON string or mapping that is either a target
    spec (``{"seed":..,"index":..}``, ``{"scene": {...}}``, ``{"dataset":..}``,
    ``{"target_id":..}``) or wraps one as ``{"target": spec}``.
    """
    data = ground_truth
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    if isinstance(data, str):
        text = data.strip()
        if text.startswith("t-") and "{" not in text:
            return parse_target({"target_id": text}, "ground_truth", Limits())
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"ground truth must be a target id or JSON target spec, got {text[:80]!r}"
            ) from exc
    if isinstance(data, Mapping) and "target" in data:
        data = data["target"]
    if not isinstance(data, Mapping):
        raise ValueError(f"ground truth must name a target, got {ground_truth!r:.80}")
    try:
        return parse_target(dict(data), "ground_truth", Limits())
    except Exception as exc:  # BadRequest: re-raise as the ValueError a data bug is
        raise ValueError(f"bad ground truth {ground_truth!r:.80}: {exc}") from exc


def ground_truth_json(target: TargetSpec | str) -> str:
    """The ground-truth string to store in a dataset row for ``target`` (inverse of parse)."""
    return json.dumps({"target": target_to_wire(target)}, separators=(",", ":"))


class RewardClient:
    """A thread-safe, lazily connected client that scores completions in batches."""

    def __init__(
        self,
        address: str | None = None,
        preset: str | None = None,
        timeout: float | None = None,
        retries: int = 2,
    ) -> None:
        address = address or os.environ.get(ADDRESS_VAR)
        if not address:
            raise ConfigurationError(
                f"no derender address: call derender.protocol.integrations.configure(address=...)"
                f" or set {ADDRESS_VAR} (e.g. tcp://127.0.0.1:5555)"
            )
        self.address = address
        self.preset = preset or os.environ.get(PRESET_VAR) or None
        self.timeout = float(timeout or os.environ.get(TIMEOUT_VAR) or 300.0)
        self.retries = retries
        self._client: Any = None
        self._lock = threading.Lock()  # a zmq socket must not be shared between threads

    def _connected(self) -> Any:
        if self._client is None:
            from ..client import Client

            self._client = Client(self.address, timeout=self.timeout, retries=self.retries)
        return self._client

    def score(self, completions: Sequence[Any], ground_truths: Sequence[Any]) -> list[Scored]:
        """One :class:`Scored` per completion, in order; all of them in flight at once."""
        if len(completions) != len(ground_truths):
            raise ValueError(
                f"{len(completions)} completions but {len(ground_truths)} ground truths"
            )
        if not completions:
            return []
        scripts = [extract_script(c) for c in completions]
        targets = [parse_ground_truth(g) for g in ground_truths]
        with self._lock:
            results = self._connected().step_many(
                scripts, targets, preset=self.preset, return_exceptions=True
            )
        out = []
        for i, res in enumerate(results):
            if isinstance(res, Exception):
                raise RewardRequestError(f"item {i} (target {targets[i]}) failed: {res}") from res
            out.append(Scored(float(res.reward), res.outcome, dict(res.components), res.message))
        return out

    async def ascore(
        self, completions: Sequence[Any], ground_truths: Sequence[Any]
    ) -> list[Scored]:
        """:meth:`score` without blocking the event loop (the farm does the parallel work)."""
        return await asyncio.to_thread(self.score, completions, ground_truths)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


_default: RewardClient | None = None
_default_lock = threading.Lock()


def configure(
    address: str | None = None, preset: str | None = None, timeout: float | None = None
) -> RewardClient:
    """Point every adapter at a farm (replaces the client made from the environment)."""
    global _default
    client = RewardClient(address, preset, timeout)
    with _default_lock:
        old, _default = _default, client
    if old is not None:
        old.close()
    return client


def default_client() -> RewardClient:
    """The configured client, made from DERENDER_ADDRESS on first use in this process."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RewardClient()
        return _default


def score(completions: Sequence[Any], ground_truths: Sequence[Any]) -> list[Scored]:
    return default_client().score(completions, ground_truths)


async def ascore(completions: Sequence[Any], ground_truths: Sequence[Any]) -> list[Scored]:
    return await default_client().ascore(completions, ground_truths)
