"""The farm broker: clients' ROUTER in front, workers' ROUTERs behind, one event loop.

Clients speak protocol v1 unchanged (SPEC.md), plus the farm-only ``status`` request.
What a request means (validation, target specs, jobs, replies) is decided by the sans-IO
:class:`derender.farm.core.RequestCore`; the broker drives it between its sockets
(:class:`.broker_sockets.BrokerSockets`) and its workers (:class:`.pool.WorkerPool`),
and adds what a farm needs around it:

- fan-out: a request becomes jobs for the pool (which owns workers, dispatch, deadlines,
  retries); a ``step_batch`` spreads over all step workers; at most ``max_pending`` jobs
  wait, beyond that the reply is ``overloaded``;
- isolation: scripts run only on step workers and targets are rendered only by target
  workers (SVG documents, a client's too, by SVG workers); a step job carries the script,
  its seed and its passes, never the target it is scored against;
- deadlines: a request unanswered after ``request_timeout`` gets ``timeout``;
- delivery: each request is answered exactly once; a duplicate (same client, same id) of
  a request still open is dropped; replies to vanished clients are dropped, never block;
- targets: rendered once per farm (cached by the core; concurrent resets of one target
  wait for one render);
- rewards: scored in batches by :class:`.reward_stage.RewardStage`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import zmq

from ..protocol.errors import InternalError, Overloaded, ProtocolError, RequestTimeout
from ..protocol.messages import (
    PROTOCOL_VERSION,
    Info,
    Ping,
    Render,
    Request,
    Reset,
    ServerLimits,
    Status,
    Step,
    StepBatch,
    StepItem,
    TargetSpec,
    parse_request,
)
from ..protocol.results import ScriptRun
from ..protocol.targets import Target
from ..protocol.transport import drain, split_envelope
from ..scenes import Scene, scene_to_clevr
from .broker_sockets import BrokerSockets
from .config import FarmConfig
from .core import ItemResult, NeedsRender, RequestCore, decode_request, error_reply
from .jobs import STEP, SVG, TARGET, Finish, Job, Pending
from .metrics import Metrics, log_line
from .pool import WorkerPool
from .reward_stage import Finished, RewardStage
from .supervisor import Supervisor

log = logging.getLogger(__name__)

Made = Callable[[Target], None]
Failed = Callable[[ProtocolError], None]


class Broker:
    """Owns the sockets, the supervisor, the queue and the reward stage of one farm."""

    def __init__(
        self,
        config: FarmConfig,
        run_dir: Path,
        datasets: Mapping[str, Sequence[Scene]] | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.config = config
        self.frame = config.frame()
        self.frame_hash = self.frame.hash()
        self.limits = ServerLimits(max_pending=config.max_pending, max_targets=config.max_targets)
        self.core = RequestCore(
            self.frame,
            self.limits,
            datasets,
            default_preset=config.preset,
            envs=config.envs(),
            canvas=config.canvas(),
            svg_preset=config.svg_preset,
        )
        # warm the first env's default preset (an SVG-only farm's is seed-svg)
        self.rewards = RewardStage(self.frame, self.core.default_presets[config.envs()[0]])
        self.metrics = Metrics()
        self.sockets = BrokerSockets(
            config, Path(run_dir), self.limits.max_frame_bytes, context or zmq.Context.instance()
        )
        self.addresses = self.sockets.addresses
        self.address = self.addresses[0]
        self.supervisor = Supervisor(config, Path(run_dir), self.sockets.backend_addresses)
        hashes = {STEP: self.frame_hash, TARGET: self.frame_hash, SVG: config.canvas().hash()}
        self.pool = WorkerPool(
            config,
            self.sockets.backends,
            self.sockets.remote,
            self.supervisor,
            self.metrics,
            hashes,
        )
        self.pending: dict[tuple[bytes, Any], Pending] = {}
        self._rendering: dict[str, list[tuple[Made, Failed]]] = {}  # target id -> waiters
        self._jids = itertools.count(1)
        self._next_log = time.monotonic() + config.metrics_interval

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        self.pool.start()
        self.rewards.warm(self.frame.width)  # while the workers start up

    def close(self) -> None:
        self.supervisor.stop()
        self.sockets.close()

    def run_once(self, wait_s: float = 0.05) -> None:
        """One loop iteration: receive, dispatch, score, reply, supervise."""
        ready = self.sockets.poll(wait_s)
        for sock in self.sockets.worker_sockets:
            if sock in ready:
                drain(sock, lambda frames, s=sock: self.pool.on_message(s, frames))
        self.pool.dispatch()
        self.rewards.flush()
        if self.sockets.frontend in ready:
            drain(self.sockets.frontend, self._on_client)
        self.pool.supervise()
        self._expire()
        self.pool.dispatch()
        if self.config.metrics_interval > 0 and time.monotonic() >= self._next_log:
            self._next_log = time.monotonic() + self.config.metrics_interval
            log.info("%s", log_line(self.status()))

    # -- clients --------------------------------------------------------------------
    def _on_client(self, frames: list[Any]) -> None:
        envelope, body = split_envelope(frames)
        incoming = decode_request(body, self.limits)
        rid, kind, encoding = incoming.rid, incoming.kind, incoming.encoding
        try:
            if incoming.error is not None:
                raise incoming.error
            header = cast(dict[str, Any], incoming.header)
            self._request(envelope, parse_request(header, self.limits), encoding)
        except ProtocolError as exc:
            self._send(envelope, error_reply(rid, kind, exc), encoding)
            self.metrics.answered(kind, 0.0, exc.code)
        except Exception as exc:  # a bug must not stop the farm; the client learns what
            log.exception("internal error handling request %r", rid)
            err = InternalError(f"{type(exc).__name__}: {exc}")
            self._send(envelope, error_reply(rid, kind, err), encoding)
            self.metrics.answered(kind, 0.0, err.code)

    def _request(self, envelope: list[bytes], req: Request, encoding: str) -> None:
        if isinstance(req, Status):
            body = {"v": PROTOCOL_VERSION, "id": req.id, "type": "status", "ok": True}
            self._send(envelope, {**body, **self.status()}, "raw")
            return
        if isinstance(req, Ping | Info):
            self._send(envelope, self.core.answer(req), encoding)
            self.metrics.answered(req.type, 0.0)
            return
        items: tuple[StepItem, ...] = ()
        if isinstance(req, StepBatch):
            items = req.items
        elif isinstance(req, Step):
            items = (req.item,)
        needed = max(1, len(items))
        if self.pool.queued + needed > self.config.max_pending:
            self.metrics.rejected += 1
            raise Overloaded(
                f"{self.pool.queued} jobs are queued (limit {self.config.max_pending}); retry later"
            )
        if isinstance(req, Step | StepBatch) and (req.preset or req.env):
            # decidable now: refuse the whole request (else each item learns its target's)
            self.core.passes(req, req.preset or self.core.default_presets[str(req.env)])
        expires = time.monotonic() + self.config.request_timeout
        p = Pending(envelope, req.id, req.type, encoding, expires, [None] * needed, needed)
        if p.key in self.pending:  # the same request again while it runs: answer once
            return
        self.pending[p.key] = p
        if isinstance(req, Reset):
            masks = req.masks
            self._with_target(
                req.target,
                req.env,
                lambda t: self._done(p, 0, self.core.target_body(t, masks)),
                lambda e: self._done(p, 0, e),
            )
        elif isinstance(req, Render):
            job = {"kind": "render", "masks": req.masks, "scene": scene_to_clevr(req.scene)}
            self._submit(job, self._render_finish(p, req.masks), owner=p)
        else:
            assert isinstance(req, Step | StepBatch)
            for i, item in enumerate(items):
                self._step(p, i, item, req)

    def _render_finish(self, p: Pending, masks: bool) -> Finish:
        def finish(result: dict[str, Any] | None, error: ProtocolError | None) -> None:
            if error is not None or result is None:
                self._done(p, 0, error or InternalError("render returned nothing"))
            else:
                self._done(p, 0, self.core.render_body(result, masks))

        return finish

    def _step(self, p: Pending, index: int, item: StepItem, req: Step | StepBatch) -> None:
        """Queue one script once its target exists. The target's env picks the workers
        and, where the request names none, the preset."""

        def run(target: Target) -> None:
            try:
                preset = self.core.step_preset(req, target)
                passes = self.core.passes(req, preset)
                job = self.core.step_job(item, target, passes, req.env)
            except ProtocolError as exc:
                self._done(p, index, exc)
                return

            def finish(result: dict[str, Any] | None, error: ProtocolError | None) -> None:
                if error is not None or result is None:
                    self._done(p, index, error or InternalError("step returned nothing"))
                    return
                try:
                    script_run = ScriptRun.from_wire(result)
                except (KeyError, TypeError, ValueError) as exc:  # a garbled worker result
                    self._done(p, index, InternalError(f"unreadable step result: {exc}"))
                    return
                done = lambda body: self._done(p, index, body)  # noqa: E731
                self.rewards.add(Finished(item.script, target, preset, req.masks, script_run, done))

            self._submit(job, finish, owner=p)

        # items parsed from the wire always carry a TargetSpec (a str is client-side only)
        self._with_target(
            cast(TargetSpec, item.target), req.env, run, lambda e: self._done(p, index, e)
        )

    def _with_target(self, spec: TargetSpec, env: str | None, then: Made, fail: Failed) -> None:
        """``then(target)`` once the target exists; the first request for a target that is
        not made yet submits its render job, later ones wait for that render."""
        try:
            resolved = self.core.resolve(spec, env)
        except ProtocolError as exc:
            fail(exc)
            return
        if isinstance(resolved, Target):
            then(resolved)
            return
        waiters = self._rendering.setdefault(resolved.target_id, [])
        waiters.append((then, fail))
        if len(waiters) == 1:
            self._submit(resolved.job, self._target_finish(resolved))

    def _target_finish(self, needs: NeedsRender) -> Finish:
        def finish(result: dict[str, Any] | None, error: ProtocolError | None) -> None:
            made: Target | ProtocolError
            if error is not None or result is None:
                made = error or InternalError("target render returned nothing")
            else:
                try:
                    made = self.core.made(needs, result)
                except ProtocolError as exc:  # a refused SVG document
                    made = exc
                except (KeyError, TypeError, ValueError) as exc:  # a garbled worker result
                    made = InternalError(f"unreadable target render: {exc}")
            for ok, bad in self._rendering.pop(needs.target_id, []):
                if isinstance(made, ProtocolError):
                    bad(made)
                else:
                    ok(made)

        return finish

    def _submit(self, body: dict[str, Any], finish: Finish, owner: Pending | None = None) -> None:
        self.pool.submit(Job(next(self._jids), body, finish, owner=owner))

    def _done(self, p: Pending, index: int, value: ItemResult) -> None:
        if p.fill(index, value):
            self._answer(p)

    def _answer(self, p: Pending) -> None:
        if p.answered:
            return
        p.answered = True
        self.pending.pop(p.key, None)
        for job in p.jobs:  # queued work nobody waits for any more
            job.cancelled = job.worker is None
        reply = self.core.reply(p.rid, p.kind, p.slots)
        error = reply["error"]["code"] if not reply["ok"] else None
        for v in p.slots:
            if isinstance(v, dict) and "outcome" in v:
                self.metrics.outcomes[v["outcome"]] += 1
        self._send(p.envelope, reply, p.encoding)
        self.metrics.answered(p.kind, time.monotonic() - p.received, error)
        self.sockets.publish(p.kind, reply)

    def _send(self, envelope: list[bytes], reply: dict[str, Any], encoding: str) -> None:
        if not self.sockets.reply(envelope, reply, encoding):
            self.metrics.dropped += 1

    def _expire(self) -> None:
        """Answer ``timeout`` for what is still open past ``request_timeout``."""
        now = time.monotonic()
        for p in [p for p in self.pending.values() if now > p.expires]:
            exc = RequestTimeout(f"not answered within {self.config.request_timeout:g} s")
            for i, v in enumerate(p.slots):
                if v is None:
                    p.fill(i, exc)
            self._answer(p)

    def status(self) -> dict[str, Any]:
        """The ``status`` reply body (and the metrics log line's source)."""
        return {
            "workers": [ws.to_dict() for ws in self.pool.workers.values()],
            "queue": self.pool.queued,
            "inflight": self.pool.inflight,
            "pending": len(self.pending),
            "targets": len(self.core.targets),
            "restarts": self.supervisor.restarts,
            "network_isolated": self.supervisor.network_isolated,
            "os_sandboxed": self.supervisor.os_sandboxed,
            "os_sandbox_problem": self.supervisor.os_sandbox_problem,
            "remote_backend": self.sockets.remote_address,
            "frame_hash": self.frame_hash,
            "engine": self.frame.engine,
            "reward": {"batches": self.rewards.batches, "scored": self.rewards.scored},
            "metrics": self.metrics.snapshot(),
        }
