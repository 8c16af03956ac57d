"""The farm broker: clients' ROUTER in front, workers' ROUTERs behind, one event loop.

Clients speak protocol v1 unchanged (SPEC.md), plus the farm-only ``status`` request.
Request meaning (validation, target specs, ``info``, target bodies) comes from
:class:`derender.farm.core.RequestCore`; the broker adds what a farm needs around it:

- fan-out: a request becomes jobs for :class:`.pool.WorkerPool` (which owns workers,
  dispatch, deadlines, retries); a ``step_batch`` spreads over all step workers; at most
  ``max_pending`` jobs wait, beyond that the reply is ``overloaded``;
- isolation: scripts run only on step workers and targets are rendered only by target
  workers, each role on its own ``ipc://`` backend in its own directory (the OS sandbox
  gives a worker only its own role's socket); a step job carries the script, its seed
  and whether masks are needed, never the target it is scored against;
- deadlines: a request unanswered after ``request_timeout`` gets ``timeout``;
- delivery: each request is answered exactly once; a duplicate (same client, same id) of
  a request still open is dropped; replies to vanished clients are dropped, never block;
- targets: rendered once per farm (cached by scene + frame hash, concurrent resets of
  one scene share one render);
- rewards: scored in batches by :class:`.reward_stage.RewardStage`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import zmq

from ..protocol import codec
from ..protocol.errors import (
    BadRequest,
    InternalError,
    Overloaded,
    ProtocolError,
    RequestTimeout,
    UnknownTarget,
)
from ..protocol.messages import (
    PROTOCOL_VERSION,
    Info,
    Ping,
    Render,
    Reset,
    ServerLimits,
    Status,
    Step,
    StepBatch,
    StepItem,
    TargetRef,
    TargetSpec,
    parse_request,
)
from ..protocol.results import ScriptRun
from ..protocol.targets import Target, target_id
from ..protocol.transport import (
    CurveConfig,
    InsecureBind,
    check_addresses,
    drain,
    is_loopback,
    make_curve_server,
    split_envelope,
    start_authenticator,
)
from ..scenes import Scene, scene_to_clevr
from .config import FarmConfig
from .core import Passes, RequestCore, decode_request, error_reply
from .jobs import ROLES, STEP, SVG, TARGET, Finish, Job, Pending
from .metrics import Metrics, log_line
from .pool import WorkerPool
from .reward_stage import Finished, RewardStage
from .supervisor import Supervisor

log = logging.getLogger(__name__)


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
        )
        self.targets = self.core.targets
        self.rewards = RewardStage(self.frame, config.preset)
        self.metrics = Metrics()
        binds = list(config.bind) or ["tcp://127.0.0.1:*"]
        curve = None
        if config.curve_secret is not None:
            curve = CurveConfig(Path(config.curve_secret), Path(config.curve_clients or ""))
        remote = [config.remote_backend] if config.remote_backend else []
        check_addresses([*binds, *remote], curve)
        if config.monitor is not None and not is_loopback(config.monitor):
            raise InsecureBind(f"the monitor {config.monitor!r} must be loopback or ipc")
        self._ctx = context or zmq.Context.instance()
        self._auth: Any = None
        self.frontend = self._router(self.limits.max_frame_bytes)
        # clients on loopback need no keys (as with `derender serve`); anyone else does
        # Loopback endpoints first: an endpoint takes the socket's security options when it
        # is bound, so those bound before CURVE is switched on stay plain.
        bound = {
            bind: self._bind(self.frontend, bind, None if is_loopback(bind) else curve)
            for bind in sorted(binds, key=lambda b: not is_loopback(b))
        }
        self.addresses = [bound[bind] for bind in binds]
        self.address = self.addresses[0]
        # Local workers: one ipc backend per role, each in a directory of its own (the OS
        # sandbox mounts only the worker's own), never CURVE (bound before CURVE is on).
        self.backends: dict[str, zmq.Socket] = {}
        self.backend_addresses: dict[str, str] = {}
        for role in ROLES:
            directory = Path(run_dir) / role  # the supervisor shares it with the workers
            directory.mkdir(exist_ok=True)
            sock = self.backends[role] = self._router(-1)
            path = directory / "backend.sock"
            sock.bind(f"ipc://{path}")
            self.backend_addresses[role] = f"ipc://{path}"
        self.remote: zmq.Socket | None = None
        self.remote_address: str | None = None  # bound: with the port the OS picked
        if remote:
            self.remote = self._router(-1)
            self.remote_address = self._bind(self.remote, remote[0], curve)
        self.supervisor = Supervisor(config, Path(run_dir), self.backend_addresses)
        hashes = {STEP: self.frame_hash, TARGET: self.frame_hash, SVG: config.canvas().hash()}
        self.pool = WorkerPool(
            config, self.backends, self.remote, self.supervisor, self.metrics, hashes
        )
        self.pending: dict[tuple[bytes, Any], Pending] = {}
        self._rendering: dict[str, list[tuple[Any, Any]]] = {}  # target id -> waiters
        self._jids = itertools.count(1)
        self._poller = zmq.Poller()
        for polled in (self.frontend, *self.backends.values(), self.remote):
            if polled is not None:
                self._poller.register(polled, zmq.POLLIN)
        self.monitor: zmq.Socket | None = None
        if config.monitor is not None:
            self.monitor = self._ctx.socket(zmq.PUB)
            self.monitor.setsockopt(zmq.LINGER, 0)
            self.monitor.setsockopt(zmq.SNDHWM, 16)  # a slow viewer misses replies, never blocks
            self.monitor.bind(config.monitor)
        self._next_log = time.monotonic() + config.metrics_interval

    def _router(self, max_msg: int) -> zmq.Socket:
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a vanished peer fails fast
        sock.setsockopt(zmq.MAXMSGSIZE, max_msg)
        return sock

    def _bind(self, sock: zmq.Socket, address: str, curve: CurveConfig | None) -> str:
        """Bind and return the bound endpoint (with the port the OS picked); with
        ``curve``, this endpoint (and later ones) require CURVE keys.

        libzmq copies security options into an endpoint when it is bound, so endpoints
        bound before CURVE is switched on (the local workers' ipc) stay plain.
        """
        if curve is not None:
            make_curve_server(sock, curve)
            if self._auth is None:
                self._auth = start_authenticator(self._ctx, curve)
        sock.bind(address)
        return cast(bytes, sock.getsockopt(zmq.LAST_ENDPOINT)).decode()

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        self.pool.start()
        self.rewards.warm(self.frame.width)  # while the workers start up

    def close(self) -> None:
        self.supervisor.stop()
        for sock in (self.frontend, *self.backends.values(), self.remote, self.monitor):
            if sock is not None:
                sock.close(0)
        if self._auth is not None:
            self._auth.stop()
        for address in (*self.addresses, *self.backend_addresses.values()):
            if address.startswith("ipc://"):  # zmq leaves the socket file behind
                Path(address.removeprefix("ipc://")).unlink(missing_ok=True)

    def run_once(self, wait_s: float = 0.05) -> None:
        """One loop iteration: receive, dispatch, score, reply, supervise."""
        events = dict(self._poller.poll(int(wait_s * 1000)))
        for sock in (*self.backends.values(), self.remote):
            if sock is not None and sock in events:
                drain(sock, lambda frames, s=sock: self.pool.on_message(s, frames))
        self.pool.dispatch()
        self.rewards.flush()
        if self.frontend in events:
            drain(self.frontend, self._on_client)
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
            self._reply(envelope, error_reply(rid, kind, exc), encoding)
            self.metrics.answered(kind, 0.0, exc.code)
        except Exception as exc:  # a bug must not stop the farm; the client learns what
            log.exception("internal error handling request %r", rid)
            err = InternalError(f"{type(exc).__name__}: {exc}")
            self._reply(envelope, error_reply(rid, kind, err), encoding)
            self.metrics.answered(kind, 0.0, err.code)

    def _request(self, envelope: list[bytes], req: Any, encoding: str) -> None:
        if isinstance(req, Status):
            body = {"v": PROTOCOL_VERSION, "id": req.id, "type": "status", "ok": True}
            self._reply(envelope, {**body, **self.status()}, "raw")
            return
        if isinstance(req, Ping | Info):
            self._reply(envelope, self.core.answer(req), encoding)
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
        passes = self.core.passes(req) if isinstance(req, Step | StepBatch) else None
        p = Pending(
            envelope,
            req.id,
            req.type,
            encoding,
            time.monotonic() + self.config.request_timeout,
            [None] * needed,
            needed,
        )
        if p.key in self.pending:  # the same request again while it runs: answer once
            return
        self.pending[p.key] = p
        if isinstance(req, Reset):
            masks = req.masks
            self._with_target(
                req.target,
                p,
                lambda t: self._done(p, 0, self.core.target_body(t, masks)),
                lambda e: self._done(p, 0, e),
                req.env,
            )
        elif isinstance(req, Render):
            self.pool.submit(
                Job(
                    next(self._jids),
                    {"kind": "render", "masks": req.masks, "scene": scene_to_clevr(req.scene)},
                    self._render_finish(p, req.masks),
                    owner=p,
                )
            )
        else:
            preset = req.preset or self.config.preset
            assert passes is not None  # a step or a step_batch
            for i, item in enumerate(items):
                self._step(p, i, item, preset, req.masks, passes, req.env)

    def _render_finish(self, p: Pending, masks: bool) -> Finish:
        def finish(result: dict[str, Any] | None, error: ProtocolError | None) -> None:
            if error is not None or result is None:
                self._done(p, 0, error or InternalError("render returned nothing"))
                return
            self._done(
                p,
                0,
                {
                    "image": result["image"],
                    "masks": result.get("masks") if masks else None,
                    "timings": result.get("timings", {}),
                    "frame_hash": self.frame_hash,
                },
            )

        return finish

    def _step(
        self,
        p: Pending,
        index: int,
        item: StepItem,
        preset: str,
        send_masks: bool,
        passes: Passes,
        env: str | None,
    ) -> None:
        """Queue one script; ``passes``: whether the worker renders the image and the
        masks (someone needs them) and, for SVG, the shape descriptors; ``send_masks``:
        the client gets the masks. The target's env picks the workers."""

        def run(target: Target) -> None:
            if env is not None and env != target.env:
                self._done(
                    p, index, BadRequest(f"{target.target_id} is an {target.env} target, not {env}")
                )
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
                self.rewards.add(
                    Finished(item.script, target, preset, send_masks, script_run, done)
                )

            if target.env == "svg":  # SVG always renders: the image is the whole result
                body = {"kind": "svg", "script": item.script, "masks": True}
                body["elements"] = passes.elements
            else:
                body = {"kind": "step", "script": item.script, "seed": item.seed}
                body.update(masks=passes.masks, render=passes.render)
            self.pool.submit(Job(next(self._jids), body, finish, owner=p))

        # items parsed from the wire always carry a TargetSpec (a str is client-side only)
        self._with_target(
            cast(TargetSpec, item.target), p, run, lambda e: self._done(p, index, e), env
        )

    def _with_target(
        self, spec: TargetSpec, p: Pending, then: Any, fail: Any, env: str | None = None
    ) -> None:
        """Call ``then(target)`` once the target exists, rendering it once if needed: a
        scene by a target worker, an SVG document by an SVG worker (a client's document is
        untrusted XML, so it never renders in the broker)."""
        try:
            if isinstance(spec, TargetRef):
                target = self.targets.get(spec.target_id)
                if target.env not in self.config.envs():
                    raise BadRequest(f"this farm does not serve env {target.env!r}")
                then(target)
                return
            kind = self.core.env_of(spec, env)
            if kind not in self.config.envs():
                raise BadRequest(
                    f"this farm serves envs {list(self.config.envs())}, not {kind!r} "
                    "(start it with svg_workers / workers)"
                )
            if kind == "svg":
                text, tid = self.core.svg_source(spec)
                body = {"kind": "svg", "script": text, "masks": True, "elements": True}
                make = lambda result: self.core.svg_target_from(  # noqa: E731
                    tid, text, ScriptRun.from_wire(result)
                )
            else:
                scene = self.core.scene_for(spec)
                tid = target_id(scene, self.frame_hash)
                body = {"kind": "render", "masks": True, "scene": scene_to_clevr(scene)}
                make = lambda result: self.targets.put(  # noqa: E731
                    Target(tid, scene, result["image"], result.get("masks"), self.frame_hash)
                )
        except (UnknownTarget, ProtocolError) as exc:
            fail(exc)
            return
        if tid in self.targets:
            then(self.targets.get(tid))
            return
        waiters = self._rendering.setdefault(tid, [])
        waiters.append((then, fail))
        if len(waiters) > 1:  # this target is already being rendered: wait for it
            return

        def finish(result: dict[str, Any] | None, error: ProtocolError | None) -> None:
            made: Target | ProtocolError
            if error is not None or result is None:
                made = error or InternalError("target render returned nothing")
            else:
                try:
                    made = make(result)
                except ProtocolError as exc:  # a refused SVG document
                    made = exc
                except (KeyError, TypeError, ValueError) as exc:  # a garbled worker result
                    made = InternalError(f"unreadable target render: {exc}")
            for ok, bad in self._rendering.pop(tid, []):
                if isinstance(made, ProtocolError):
                    bad(made)
                else:
                    ok(made)

        self.pool.submit(Job(next(self._jids), body, finish))

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
            results = [
                {"error": v.to_dict()} if isinstance(v, ProtocolError) else v for v in p.slots
            ]
            reply = {
                "v": PROTOCOL_VERSION,
                "id": p.rid,
                "type": p.kind,
                "ok": True,
                "results": results,
            }
        elif isinstance(p.slots[0], ProtocolError):
            reply, error = error_reply(p.rid, p.kind, p.slots[0]), p.slots[0].code
        else:
            reply = {"v": PROTOCOL_VERSION, "id": p.rid, "type": p.kind, "ok": True, **p.slots[0]}
        for v in p.slots:
            if isinstance(v, dict) and "outcome" in v:
                self.metrics.outcomes[v["outcome"]] += 1
        self._reply(p.envelope, reply, p.encoding)
        self.metrics.answered(p.kind, time.monotonic() - p.received, error)
        if self.monitor is not None:
            try:
                self.monitor.send_multipart(
                    codec.encode({"kind": p.kind, "reply": reply}, "raw"), zmq.NOBLOCK
                )
            except zmq.Again:
                pass

    def _reply(self, envelope: list[bytes], reply: dict[str, Any], encoding: str) -> None:
        try:
            self.frontend.send_multipart(envelope + codec.encode(reply, encoding), zmq.NOBLOCK)
        except zmq.Again:  # the client stopped reading: drop, never block the farm
            self.metrics.dropped += 1
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:  # the client disconnected mid-request
                raise
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
            "targets": len(self.targets),
            "restarts": self.supervisor.restarts,
            "network_isolated": self.supervisor.network_isolated,
            "os_sandboxed": self.supervisor.os_sandboxed,
            "os_sandbox_problem": self.supervisor.os_sandbox_problem,
            "remote_backend": self.remote_address,
            "frame_hash": self.frame_hash,
            "engine": self.frame.engine,
            "reward": {"batches": self.rewards.batches, "scored": self.rewards.scored},
            "metrics": self.metrics.snapshot(),
        }
