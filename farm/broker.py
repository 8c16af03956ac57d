"""The farm broker: clients' ROUTER in front, workers' ROUTER behind, one event loop.

Clients speak protocol v1 unchanged (SPEC.md), plus the farm-only ``status`` request.
Request meaning (validation, target specs, ``info``, target bodies) comes from
:class:`derender.protocol.handler.Handler`; the broker adds what a farm needs around it:

- load balancing: jobs go to idle workers in arrival order; a ``step_batch`` fans out
  over all workers; at most ``max_pending`` jobs wait, beyond that ``overloaded``;
- deadlines: a request unanswered after ``request_timeout`` gets ``timeout``; a job
  running longer than ``hard_deadline`` gets its worker killed (outcome ``timeout``);
  a worker silent for ``heartbeat_timeout`` (e.g. SIGSTOPped) is killed and replaced;
- delivery: a job whose worker died is retried on another worker up to ``max_attempts``
  times in all, then its step is answered with outcome ``poisoned``; results are accepted
  only from the job's current worker and each request is answered exactly once;
- targets: rendered once per farm (cached by scene + frame hash, concurrent resets of
  one scene share one render);
- rewards: scored in batches by :class:`.reward_stage.RewardStage`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import zmq

from ..addon.server import CurveConfig, Server, _split_envelope, is_loopback
from ..protocol import codec
from ..protocol.errors import Overloaded, ProtocolError, UnknownTarget
from ..protocol.handler import Handler, error_reply
from ..protocol.keys import load_keys
from ..protocol.messages import (
    PROTOCOL_VERSION,
    Info,
    Limits,
    Ping,
    Render,
    Reset,
    Step,
    StepBatch,
    StepItem,
    TargetRef,
    TargetSpec,
    parse_request,
    request_id,
)
from ..protocol.targets import Target, target_id
from ..scenes import Scene, scene_to_clevr
from .config import FarmConfig
from .jobs import Finish, Job, Pending, WorkerState
from .metrics import Metrics, log_line
from .reward_stage import Finished, RewardStage, failed_result
from .supervisor import Supervisor, WorkerProcess

log = logging.getLogger(__name__)


class _FrameOnly:
    """The part of a Service the Handler's request helpers use: the frame."""

    def __init__(self, frame: Any) -> None:
        self.frame = frame


class Broker:
    """Owns the sockets, the supervisor, the queue and the reward stage of one farm."""

    def __init__(self, config: FarmConfig, run_dir: Path,
                 datasets: Mapping[str, Sequence[Scene]] | None = None,
                 context: zmq.Context | None = None) -> None:
        self.config = config
        self.frame = config.frame()
        self.frame_hash = self.frame.hash()
        self.limits = Limits(max_pending=config.max_pending, max_targets=config.max_targets)
        self.handler = Handler(_FrameOnly(self.frame), self.limits, datasets,
                               default_preset=config.preset)
        self.targets = self.handler.targets
        self.rewards = RewardStage(self.frame, config.preset)
        self.metrics = Metrics()
        bind = config.bind or "tcp://127.0.0.1:*"
        backend = config.backend or f"ipc://{Path(run_dir) / 'backend.sock'}"
        curve = None
        if config.curve_secret is not None:
            curve = CurveConfig(Path(config.curve_secret), Path(config.curve_clients or ""))
        remote = [config.remote_backend] if config.remote_backend else []
        Server.check_addresses([bind, backend, *remote], curve)
        self._ctx = context or zmq.Context.instance()
        self._auth: Any = None
        self.frontend = self._router(self.limits.max_frame_bytes)
        self._bind(self.frontend, bind, curve)
        self.backend = self._router(-1)
        self.backend.bind(backend)  # local workers: ipc, no CURVE (bound before CURVE is on)
        if remote:
            self._bind(self.backend, remote[0], curve)
        self.address = self.frontend.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.backend_address = backend if not backend.endswith("*") else \
            self.backend.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.supervisor = Supervisor(config, Path(run_dir), self.backend_address)
        self.workers: dict[str, WorkerState] = {}
        self.queue: deque[Job] = deque()
        self.pending: dict[tuple[bytes, Any], Pending] = {}
        self._idle: deque[str] = deque()
        self._rendering: dict[str, list[tuple[Any, Any]]] = {}  # target id -> waiters
        self._jids = itertools.count(1)
        self._poller = zmq.Poller()
        self._poller.register(self.frontend, zmq.POLLIN)
        self._poller.register(self.backend, zmq.POLLIN)
        self._next_log = time.monotonic() + config.metrics_interval

    def _router(self, max_msg: int) -> zmq.Socket:
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a vanished peer fails fast
        sock.setsockopt(zmq.MAXMSGSIZE, max_msg)
        return sock

    def _bind(self, sock: zmq.Socket, address: str, curve: CurveConfig | None) -> None:
        """Bind; with CURVE keys, this endpoint (and later ones) require them.

        libzmq copies security options into an endpoint when it is bound, so endpoints
        bound before CURVE is switched on (the local workers' ipc) stay plain.
        """
        if curve is not None and not is_loopback(address) or (
                curve is not None and sock is self.backend):
            keys = load_keys(curve.secret_file)
            if keys.secret is None:
                raise ValueError(f"{str(curve.secret_file)!r} holds no secret key")
            if self._auth is None:
                from zmq.auth.thread import ThreadAuthenticator

                self._auth = ThreadAuthenticator(self._ctx)
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(curve.clients_dir))
            sock.curve_secretkey, sock.curve_publickey = keys.secret, keys.public
            sock.curve_server = True
        sock.bind(address)

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        self.supervisor.start()
        for wp in self.supervisor.workers.values():
            self._register(wp)
        self.rewards.warm(self.frame.width)  # while the workers start up

    def close(self) -> None:
        self.supervisor.stop()
        self.frontend.close(0)
        self.backend.close(0)
        if self._auth is not None:
            self._auth.stop()
        for address in (self.address, self.backend_address):
            if address.startswith("ipc://"):  # zmq leaves the socket file behind
                Path(address.removeprefix("ipc://")).unlink(missing_ok=True)

    def _register(self, wp: WorkerProcess) -> None:
        self.workers[wp.identity] = WorkerState(wp.identity, wp.slot)

    def run_once(self, wait_s: float = 0.05) -> None:
        """One loop iteration: receive, dispatch, score, reply, supervise."""
        events = dict(self._poller.poll(int(wait_s * 1000)))
        if self.backend in events:
            self._drain(self.backend, self._on_worker)
        self._dispatch()
        self.rewards.flush()
        if self.frontend in events:
            self._drain(self.frontend, self._on_client)
        self._supervise()
        self._dispatch()
        if self.config.metrics_interval > 0 and time.monotonic() >= self._next_log:
            self._next_log = time.monotonic() + self.config.metrics_interval
            log.info("%s", log_line(self.status()))

    def _drain(self, sock: zmq.Socket, handle: Any, most: int = 1000) -> None:
        for _ in range(most):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            handle(frames)

    # -- clients --------------------------------------------------------------------
    def _on_client(self, frames: list[Any]) -> None:
        envelope, body = _split_envelope(frames)
        rid: Any = None
        kind, encoding = "error", "raw"
        try:
            header = codec.decode(body, self.limits.codec())
            rid = request_id(header, self.limits)
            kind = header["type"] if isinstance(header.get("type"), str) else "error"
            encoding = header.get("encoding") if header.get("encoding") in codec.ENCODINGS \
                else "raw"
            if kind == "status" and rid is not None and header.get("v") == PROTOCOL_VERSION:
                self._reply(envelope, {"v": PROTOCOL_VERSION, "id": rid, "type": "status",
                                       "ok": True, **self.status()}, "raw")
                return
            self._request(envelope, parse_request(header, self.limits), encoding)
        except ProtocolError as exc:
            self._reply(envelope, error_reply(rid, kind[:32], exc), encoding)
            self.metrics.answered(kind[:32], 0.0, exc.code)

    def _request(self, envelope: list[bytes], req: Any, encoding: str) -> None:
        if isinstance(req, Ping | Info):
            self._reply(envelope, self.handler.handle(req), encoding)
            self.metrics.answered(req.type, 0.0)
            return
        items: tuple[StepItem, ...] = ()
        if isinstance(req, StepBatch):
            items = req.items
        elif isinstance(req, Step):
            items = (req.item,)
        needed = max(1, len(items))
        if len(self.queue) + needed > self.config.max_pending:
            self.metrics.rejected += 1
            raise Overloaded(f"{len(self.queue)} jobs are queued (limit "
                             f"{self.config.max_pending}); retry later")
        if isinstance(req, Step | StepBatch):
            self.handler._preset(req.preset or self.config.preset)  # BadRequest if unknown
        p = Pending(envelope, req.id, req.type, encoding,
                    time.monotonic() + self.config.request_timeout, [None] * needed, needed)
        if p.key in self.pending:  # the same request again while it runs: answer once
            return
        self.pending[p.key] = p
        if isinstance(req, Reset):
            masks = req.masks
            self._with_target(req.target, p,
                              lambda t: self._done(p, 0, self.handler._target_body(t, masks)),
                              lambda e: self._done(p, 0, e))
        elif isinstance(req, Render):
            self._submit(Job(next(self._jids), {"kind": "render", "masks": req.masks,
                             "scene": scene_to_clevr(req.scene)},
                             self._render_finish(p, req.masks), owner=p))
        else:
            preset = req.preset or self.config.preset
            for i, item in enumerate(items):
                self._step(p, i, item, preset, req.masks)

    def _render_finish(self, p: Pending, masks: bool) -> Finish:
        def finish(result: dict[str, Any] | None, error: ProtocolError | None) -> None:
            if error is not None or result is None:
                self._done(p, 0, error or ProtocolError("render returned nothing"))
                return
            self._done(p, 0, {"image": result["image"],
                              "masks": result.get("masks") if masks else None,
                              "timings": result.get("timings", {}),
                              "frame_hash": self.frame_hash})
        return finish

    def _step(self, p: Pending, index: int, item: StepItem, preset: str, masks: bool) -> None:
        def run(target: Target) -> None:
            def finish(result: dict[str, Any] | None, error: ProtocolError | None) -> None:
                if error is not None or result is None:
                    self._done(p, index, error or ProtocolError("step returned nothing"))
                    return
                self.rewards.add(Finished(item.script, target, preset, masks, result,
                                          lambda body: self._done(p, index, body)))

            body = {"kind": "step", "script": item.script, "seed": item.seed}
            self._submit(Job(next(self._jids), body, finish, owner=p))

        self._with_target(item.target, p, run, lambda e: self._done(p, index, e))

    def _with_target(self, spec: TargetSpec, p: Pending, then: Any, fail: Any) -> None:
        """Call ``then(target)`` once the target exists (rendering it if needed)."""
        try:
            if isinstance(spec, TargetRef):
                then(self.targets.get(spec.target_id))
                return
            scene = self.handler._scene_for(spec)
        except (UnknownTarget, ProtocolError) as exc:
            fail(exc)
            return
        tid = target_id(scene, self.frame_hash)
        if tid in self.targets:
            then(self.targets.get(tid))
            return
        waiters = self._rendering.setdefault(tid, [])
        waiters.append((then, fail))
        if len(waiters) > 1:  # this scene is already being rendered: wait for it
            return

        def finish(result: dict[str, Any] | None, error: ProtocolError | None) -> None:
            for ok, bad in self._rendering.pop(tid, []):
                if error is not None or result is None:
                    bad(error or ProtocolError("target render returned nothing"))
                else:
                    target = self.targets.put(Target(tid, scene, result["image"],
                                                     result.get("masks"), self.frame_hash))
                    ok(target)

        self._submit(Job(next(self._jids), {"kind": "render", "masks": True,
                                            "scene": scene_to_clevr(scene)}, finish))

    def _done(self, p: Pending, index: int, value: dict[str, Any] | ProtocolError) -> None:
        if p.fill(index, value):
            self._answer(p)

    def _answer(self, p: Pending) -> None:
        if p.answered:
            return
        p.answered = True
        self.pending.pop(p.key, None)
        for job in p.jobs:  # queued work nobody waits for any more
            job.cancelled = job.worker is None
        error: str | None = None
        if p.kind == "step_batch":
            results = [{"error": v.to_dict()} if isinstance(v, ProtocolError) else v
                       for v in p.slots]
            reply = {"v": PROTOCOL_VERSION, "id": p.rid, "type": p.kind, "ok": True,
                     "results": results}
        elif isinstance(p.slots[0], ProtocolError):
            reply, error = error_reply(p.rid, p.kind, p.slots[0]), p.slots[0].code
        else:
            reply = {"v": PROTOCOL_VERSION, "id": p.rid, "type": p.kind, "ok": True,
                     **p.slots[0]}
        for v in p.slots:
            if isinstance(v, dict) and "outcome" in v:
                self.metrics.outcomes[v["outcome"]] += 1
        self._reply(p.envelope, reply, p.encoding)
        self.metrics.answered(p.kind, time.monotonic() - p.received, error)

    def _reply(self, envelope: list[bytes], reply: dict[str, Any], encoding: str) -> None:
        try:
            self.frontend.send_multipart(envelope + codec.encode(reply, encoding), zmq.NOBLOCK)
        except zmq.Again:  # the client stopped reading: drop, never block the farm
            self.metrics.dropped += 1
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:  # the client disconnected mid-request
                raise
            self.metrics.dropped += 1

    # -- jobs and workers -------------------------------------------------------------
    def _submit(self, job: Job, front: bool = False) -> None:
        if job.owner is not None:
            job.owner.jobs.append(job)
        (self.queue.appendleft if front else self.queue.append)(job)

    def _dispatch(self) -> None:
        while self.queue and self._idle:
            ws = self.workers.get(self._idle.popleft())
            if ws is None or ws.state != "idle":
                continue
            job = self.queue.popleft()
            while job.cancelled and self.queue:
                job = self.queue.popleft()
            if job.cancelled:
                self._idle.appendleft(ws.identity)
                return
            job.attempts += 1
            job.worker, job.started = ws.identity, time.monotonic()
            ws.state, ws.job = "busy", job
            self.metrics.jobs += 1
            try:
                self.backend.send_multipart(
                    [ws.identity.encode(), *codec.encode({**job.body, "job": job.jid})])
            except zmq.ZMQError:  # gone between its last message and now
                job.attempts -= 1
                self._lost(ws, "unreachable")

    def _on_worker(self, frames: list[Any]) -> None:
        ident = frames[0].decode(errors="replace")
        try:
            msg = codec.decode(frames[1:], codec.CodecLimits(max_frames=64))
        except ProtocolError as exc:
            log.warning("unreadable message from worker %s: %s", ident, exc)
            return
        base = ident.removesuffix("#hb")
        ws = self.workers.get(base)
        kind = msg.get("kind")
        if ws is None:
            if kind != "ready":
                return  # a killed worker's last words, or a stranger
            ws = self.workers[base] = WorkerState(base, None)  # a remote worker joined
        ws.last_beat = time.monotonic()
        if "rss" in msg:
            ws.rss = int(msg["rss"])
        if kind == "ready" and ws.state == "starting":
            ws.state, ws.pid = "idle", int(msg.get("pid", 0))
            if msg.get("frame_hash") != self.frame_hash:
                log.error("worker %s renders frame %s, the farm's is %s: dropping it",
                          base, msg.get("frame_hash"), self.frame_hash)
                self._lost(ws, "wrong frame")
                return
            self._idle.append(base)
        elif kind == "result":
            self._on_result(ws, msg)

    def _on_result(self, ws: WorkerState, msg: dict[str, Any]) -> None:
        job = ws.job
        if job is None or job.jid != msg.get("job"):
            return  # not this worker's current job (it was reassigned): drop
        ws.job, ws.state = None, "idle"
        ws.jobs_done += 1
        if ws.slot is not None:
            self.supervisor.healthy(ws.slot)
        recycle = bool(msg.get("recycle")) or (
            self.config.recycle_every > 0 and ws.jobs_done >= self.config.recycle_every)
        if recycle:
            self._retire(ws)
        else:
            self._idle.append(ws.identity)
        if msg.get("ok"):
            job.finish({k: v for k, v in msg.items() if k not in ("kind", "job", "ok")}, None)
        else:
            err = msg.get("error") or {}
            code = err.get("code") if err.get("code") in ("render_error", "internal") else None
            job.finish(None, ProtocolError(str(err.get("message", "")), code or "internal"))

    def _retire(self, ws: WorkerState) -> None:
        """Replace a worker on purpose (recycling, hard deadline): no backoff."""
        self.workers.pop(ws.identity, None)
        if ws.slot is not None:
            self.supervisor.restart(ws.slot, blame=False)

    def _lost(self, ws: WorkerState, why: str) -> None:
        """A worker died or went silent: replace it, retry or fail its job."""
        job, ws.job = ws.job, None
        log.warning("worker %s lost (%s)%s", ws.identity, why,
                    f" running job {job.jid}" if job else "")
        self.workers.pop(ws.identity, None)
        if ws.slot is not None:  # a death during a job may be the job's fault: no blame
            self.supervisor.restart(ws.slot, blame=job is None)
        if job is None:
            return
        job.worker = None
        if job.attempts < self.config.max_attempts:
            self.metrics.retries += 1
            self.queue.appendleft(job)
        elif job.kind == "step":
            job.finish(failed_result("poisoned", f"the script's worker died on each of "
                                     f"{job.attempts} attempts ({why})"), None)
        else:
            job.finish(None, ProtocolError(f"the render's worker died {job.attempts} times "
                                           f"({why})", "worker_lost"))

    def _supervise(self) -> None:
        now = time.monotonic()
        exited = {wp.identity for wp in self.supervisor.exited()}
        for ws in list(self.workers.values()):
            if ws.identity in exited:
                self._lost(ws, "process exited")
            elif ws.state == "starting":
                if now - ws.started > self.config.start_timeout:
                    self._lost(ws, f"not ready after {self.config.start_timeout:g} s")
            elif now - ws.last_beat > self.config.heartbeat_timeout:
                self._lost(ws, f"no heartbeat for {self.config.heartbeat_timeout:g} s")
            elif ws.job is not None and now - ws.job.started > self.config.hard_deadline:
                job, ws.job = ws.job, None
                self._retire(ws)
                msg = f"killed at the farm's hard deadline of {self.config.hard_deadline:g} s"
                if job.kind == "step":
                    job.finish(failed_result("timeout", msg), None)
                else:
                    job.finish(None, ProtocolError(msg, "timeout"))
        for p in [p for p in self.pending.values() if now > p.expires]:
            exc = ProtocolError(f"not answered within {self.config.request_timeout:g} s",
                                "timeout")
            for i, v in enumerate(p.slots):
                if v is None:
                    p.fill(i, exc)
            self._answer(p)
        for wp in self.supervisor.spawn_due():
            self._register(wp)

    def status(self) -> dict[str, Any]:
        """The ``status`` reply body (and the metrics log line's source)."""
        return {
            "workers": [ws.to_dict() for ws in self.workers.values()],
            "queue": len(self.queue),
            "inflight": sum(1 for ws in self.workers.values() if ws.job is not None),
            "pending": len(self.pending),
            "targets": len(self.targets),
            "restarts": self.supervisor.restarts,
            "network_isolated": self.supervisor.network_isolated,
            "frame_hash": self.frame_hash,
            "engine": self.frame.engine,
            "reward": {"batches": self.rewards.batches, "scored": self.rewards.scored},
            "metrics": self.metrics.snapshot(),
        }
