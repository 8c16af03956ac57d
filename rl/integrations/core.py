"""The one implementation behind every trainer adapter: completions + ground truths -> rewards.

A trainer hands over model completions and, per sample, a ground truth naming the target
(JSON ``{"target": {"seed": 3, "index": 0}}``, a bare target spec, or a ``t-…`` target id;
an SVG target is its document, ``{"target": {"svg": "<svg …"}}``, which makes that sample an
``env="svg"`` one: its completion's SVG is extracted, and scored with ``seed-svg`` unless a
preset is set). :class:`RewardClient` extracts each script
(:func:`..prompt.extract_script`), sends all of them as pipelined ``step`` requests
(``Client.step_many``, so every farm worker is busy) to a farm or ``derender serve``, and
returns one :class:`Scored` per completion. The adapters
in this package only translate call shapes.

Concurrency: trainers score from many threads at once (verl runs each response's
``compute_score`` in an executor thread, OpenRLHF one ``reward_func`` call per query in
``asyncio.to_thread``). A ZeroMQ socket belongs to one thread, so each thread gets its own
:class:`~derender.protocol.client.Client`, made on its first call: calls from N threads are
N pipelines in flight at once, never one lock. :meth:`RewardClient.ascore` runs the same
code in a worker thread, so coroutines never block the event loop.

Failing fast: a thread's first call pings the address and raises
:class:`~derender.protocol.errors.ServerUnreachable` (naming the address and how to start a
farm) when nothing answers within ``DERENDER_CONNECT_TIMEOUT`` seconds.

Environment variables (what reaches Ray workers and trainer subprocesses):

* ``DERENDER_ADDRESS`` — the farm, e.g. ``tcp://127.0.0.1:5555`` (required unless
  :func:`configure` was called);
* ``DERENDER_PRESET`` — a reward preset; unset: the server's default (``graph_image``
  unless the farm was started with another);
* ``DERENDER_TIMEOUT`` — seconds to wait for the next reply of a batch (default 300: a
  busy farm queues work; this is not a connect timeout);
* ``DERENDER_CONNECT_TIMEOUT`` — seconds the liveness ping waits (default 5).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...protocol.errors import outcome_code
from ...protocol.messages import (
    ServerLimits,
    SvgTarget,
    TargetSpec,
    parse_target,
    target_to_wire,
)
from ...reward import rates
from ...reward.spec import SVG_DEFAULT_PRESET
from ..prompt import Env, extract_script

ADDRESS_VAR = "DERENDER_ADDRESS"
PRESET_VAR = "DERENDER_PRESET"
RENDER_VAR = "DERENDER_RENDER"  # 0: render-free steps (scene-graph rewards need no pixels)
TIMEOUT_VAR = "DERENDER_TIMEOUT"
CONNECT_TIMEOUT_VAR = "DERENDER_CONNECT_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 5.0


class ConfigurationError(RuntimeError):
    """No farm address: neither :func:`configure` was called nor DERENDER_ADDRESS set."""


class RewardRequestError(RuntimeError):
    """The farm could not score an item (e.g. an evicted target id); names the item."""


@dataclass(frozen=True)
class Scored:
    """One completion's reward with what a trainer wants to log next to it.

    ``components`` has the server's fixed schema: every component of the preset plus
    ``valid`` (the validity term), the same keys for every outcome (``reward.score``).
    """

    reward: float
    outcome: str
    components: dict[str, float] = field(default_factory=dict)
    message: str = ""

    @property
    def outcome_code(self) -> int:
        return outcome_code(self.outcome)

    def metrics(self) -> dict[str, float]:
        """The fixed log row: the components, ``outcome_code`` and the per-result flags of
        :mod:`derender.reward.rates` (``valid_program``, ``structural_match``, ``precise``).
        Every result of one server and preset has the same keys, in the same order."""
        return {
            **dict(sorted(self.components.items())),
            "outcome_code": float(self.outcome_code),
            **rates.flags(self.outcome, self.components),
        }


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
            return parse_target({"target_id": text}, "ground_truth", ServerLimits())
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
        return parse_target(dict(data), "ground_truth", ServerLimits())
    except Exception as exc:  # BadRequest: re-raise as the ValueError a data bug is
        raise ValueError(f"bad ground truth {ground_truth!r:.80}: {exc}") from exc


def target_env(target: TargetSpec | str) -> Env:
    """The environment kind of a ground truth's target: "svg" for an SVG document."""
    return "svg" if isinstance(target, SvgTarget) else "clevr"


def ground_truth_json(target: TargetSpec | str) -> str:
    """The ground-truth string to store in a dataset row for ``target`` (inverse of parse)."""
    return json.dumps({"target": target_to_wire(target)}, separators=(",", ":"))


def _seconds(value: float | None, var: str, default: float) -> float:
    if value is not None:
        return float(value)
    text = os.environ.get(var)
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigurationError(f"{var} must be a number of seconds, got {text!r}") from None
    if not seconds > 0:
        raise ConfigurationError(f"{var} must be > 0 seconds, got {text!r}")
    return seconds


class RewardClient:
    """Scores completions in batches; safe to call from any number of threads at once."""

    def __init__(
        self,
        address: str | None = None,
        preset: str | None = None,
        timeout: float | None = None,
        retries: int = 2,
        connect_timeout: float | None = None,
        render: bool | None = None,
    ) -> None:
        address = address or os.environ.get(ADDRESS_VAR)
        if not address:
            raise ConfigurationError(
                f"no derender address: call derender.rl.integrations.configure(address=...)"
                f" or set {ADDRESS_VAR} (e.g. tcp://127.0.0.1:5555; start a farm there with"
                " `derender farm --bind tcp://127.0.0.1:5555`)"
            )
        self.address = address
        self.preset = preset or os.environ.get(PRESET_VAR) or None
        self.render = render if render is not None else os.environ.get(RENDER_VAR, "1") != "0"
        self.timeout = _seconds(timeout, TIMEOUT_VAR, DEFAULT_TIMEOUT)
        self.connect_timeout = _seconds(
            connect_timeout, CONNECT_TIMEOUT_VAR, DEFAULT_CONNECT_TIMEOUT
        )
        self.retries = retries
        self._local = threading.local()
        self._clients: list[Any] = []  # every thread's client, for close()
        self._clients_lock = threading.Lock()

    def _client(self) -> Any:
        """This thread's connected client (a socket must stay in its thread)."""
        client = getattr(self._local, "client", None)
        if client is None:
            from ...protocol.client import Client

            client = Client(self.address, timeout=self.timeout, retries=self.retries)
            try:
                client.ping(timeout=self.connect_timeout)
            except BaseException:
                client.close()
                raise
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def score(self, completions: Sequence[Any], ground_truths: Sequence[Any]) -> list[Scored]:
        """One :class:`Scored` per completion, in order; all of them in flight at once."""
        if len(completions) != len(ground_truths):
            raise ValueError(
                f"{len(completions)} completions but {len(ground_truths)} ground truths"
            )
        if not completions:
            return []
        targets = [parse_ground_truth(g) for g in ground_truths]
        envs = [target_env(t) for t in targets]
        scripts = [extract_script(c, e) for c, e in zip(completions, envs, strict=True)]
        results: list[Any] = [None] * len(targets)
        for env in sorted(set(envs)):  # one pipelined go per kind: each has its own preset
            rows = [i for i, e in enumerate(envs) if e == env]
            preset = self.preset or (SVG_DEFAULT_PRESET if env == "svg" else None)
            done = self._client().step_many(
                [scripts[i] for i in rows],
                [targets[i] for i in rows],
                preset=preset,
                render=self.render,
                return_exceptions=True,
            )
            for i, res in zip(rows, done, strict=True):
                results[i] = res
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
        """Close every thread's socket; call when no score is in flight."""
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self._local = threading.local()


_default: RewardClient | None = None
_default_lock = threading.Lock()


def configure(
    address: str | None = None,
    preset: str | None = None,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    render: bool | None = None,
) -> RewardClient:
    """Point every adapter at a farm (replaces the client made from the environment).
    ``render=False``: render-free steps (a scene-graph reward needs no pixels)."""
    global _default
    client = RewardClient(address, preset, timeout, connect_timeout=connect_timeout, render=render)
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
