"""The broker's worker side: the job queues, idle workers, dispatch and worker failures.

Workers connect a DEALER to a backend ROUTER and say ``ready``; a job goes to the
longest-idle worker of its role (scripts to step workers, renders to target workers).
Local workers are accepted only under the identity the supervisor gave them and on the
backend socket of their role (an escaped step worker that connects again under another
identity gets nothing); remote workers join through the CURVE-authenticated remote
backend (through a worker host, :mod:`.remote`) and say which role they are; one the farm
drops is told ``exit`` and its host replaces it. A worker is replaced when its process exits,
it stays silent for ``heartbeat_timeout`` while idle (SIGSTOPped, wedged), it is not ready after
``start_timeout``, or its job runs past ``hard_deadline`` (then the job's step ends with
outcome ``timeout``). A job whose worker died is retried up to ``max_attempts`` tries in
all, then fails: a step with outcome ``poisoned``, a render with ``worker_lost``. Results
are accepted only from the worker a job is assigned to.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import zmq

from ..protocol import codec
from ..protocol.errors import InternalError, ProtocolError, RenderError, RequestTimeout, WorkerLost
from ..protocol.results import ScriptRun
from .config import FarmConfig
from .jobs import ROLES, Job, WorkerState
from .metrics import Metrics
from .supervisor import Supervisor, WorkerProcess

log = logging.getLogger(__name__)


class WorkerPool:
    """Jobs waiting, workers known (local and remote), and what happens when they fail."""

    def __init__(
        self,
        config: FarmConfig,
        sockets: dict[str, zmq.Socket],
        remote: zmq.Socket | None,
        supervisor: Supervisor,
        metrics: Metrics,
        frame_hashes: Mapping[str, str],
    ) -> None:
        self.config = config
        self.sockets = sockets  # role -> the local backend of that role
        self.remote = remote  # the CURVE backend workers on other hosts join through
        self.supervisor = supervisor
        self.metrics = metrics
        self.frame_hashes = frame_hashes  # role -> the frame (or SVG canvas) hash it renders
        self.workers: dict[str, WorkerState] = {}
        self.queues: dict[str, deque[Job]] = {role: deque() for role in ROLES}
        self._idle: dict[str, deque[str]] = {role: deque() for role in ROLES}

    def start(self) -> None:
        self.supervisor.start()
        for wp in self.supervisor.workers.values():
            self.register(wp)

    def register(self, wp: WorkerProcess) -> None:
        self.workers[wp.identity] = WorkerState(
            wp.identity,
            wp.slot,
            role=wp.role,
            pid=wp.pid,
            gpu=self.supervisor.launcher.gpu(wp.slot),
            socket=self.sockets[wp.role],
        )

    @property
    def inflight(self) -> int:
        return sum(1 for ws in self.workers.values() if ws.job is not None)

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def submit(self, job: Job) -> None:
        if job.owner is not None:
            job.owner.jobs.append(job)
        self.queues[job.role].append(job)

    def dispatch(self) -> None:
        for role in ROLES:
            self._dispatch(self.queues[role], self._idle[role])

    def _dispatch(self, queue: deque[Job], idle: deque[str]) -> None:
        while queue and idle:
            ws = self.workers.get(idle.popleft())
            if ws is None or ws.state != "idle":
                continue
            job = queue.popleft()
            while job.cancelled and queue:
                job = queue.popleft()
            if job.cancelled:
                idle.appendleft(ws.identity)
                return
            job.attempts += 1
            job.worker, job.started = ws.identity, time.monotonic()
            ws.state, ws.job = "busy", job
            self.metrics.jobs += 1
            try:
                ws.socket.send_multipart(
                    [ws.identity.encode(), *codec.encode({**job.body, "job": job.jid})]
                )
            except zmq.ZMQError:  # gone between its last message and now
                job.attempts -= 1
                self._lost(ws, "unreachable")

    def on_message(self, socket: zmq.Socket, frames: list[Any]) -> None:
        """A message from a worker on ``socket`` (one of the backends)."""
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
            if kind != "ready" or socket is not self.remote:
                return  # a killed worker's last words, or a stranger on a local backend
            role = msg.get("role")
            if role not in ROLES:
                log.warning("remote worker %s names no known role (%r): ignored", base, role)
                return
            ws = self.workers[base] = WorkerState(base, None, role=role, socket=socket)
        elif ws.socket is not socket:
            log.warning("message for worker %s on another backend: ignored", base)
            return
        try:
            self._worker_message(ws, kind, msg)
        except Exception as exc:  # a bug (or a garbled result) must not stop the farm
            log.exception("handling %r from worker %s failed", kind, base)
            self._failed(ws, exc)

    def _failed(self, ws: WorkerState, exc: Exception) -> None:
        """Handling a worker's message raised: its job fails now with the reason (the
        client is not left waiting for its timeout) and the worker, whose state is not
        known any more, is replaced."""
        job, ws.job = ws.job, None
        self._retire(ws)
        if job is not None:
            try:
                job.finish(None, InternalError(f"{type(exc).__name__}: {exc}"))
            except Exception:
                log.exception("failing job %s after an error failed too", job.jid)

    def _worker_message(self, ws: WorkerState, kind: Any, msg: dict[str, Any]) -> None:
        base = ws.identity
        ws.last_beat = time.monotonic()
        if "rss" in msg:
            ws.rss = int(msg["rss"])
        if kind == "ready" and ws.state == "starting":
            ws.state = "idle"
            # a local worker's own pid is namespaced (bwrap): the supervisor knows the host's
            local = ws.slot is not None
            ws.pid = self.supervisor.host_pid(base) if local else int(msg.get("pid", 0))
            if not local:  # where its host says it runs (status only: never trusted further)
                ws.node = str(msg["node"]) if msg.get("node") is not None else None
                ws.gpu = int(msg["gpu"]) if isinstance(msg.get("gpu"), int) else None
            expected = self.frame_hashes.get(ws.role)
            if msg.get("frame_hash") != expected or msg.get("role") != ws.role:
                log.error(
                    "worker %s is a %s worker for frame %s; the farm expects a %s worker "
                    "for frame %s: dropping it",
                    base,
                    msg.get("role"),
                    msg.get("frame_hash"),
                    ws.role,
                    expected,
                )
                self._lost(ws, "wrong frame or role")
                return
            self._idle[ws.role].append(base)
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
        limit = self.config.recycle_after(ws.role)
        recycle = bool(msg.get("recycle")) or (limit > 0 and ws.jobs_done >= limit)
        if recycle:
            self._retire(ws)
        else:
            self._idle[ws.role].append(ws.identity)
        if msg.get("ok"):
            job.finish({k: v for k, v in msg.items() if k not in ("kind", "job", "ok")}, None)
        else:
            err = msg.get("error") or {}
            kind = RenderError if err.get("code") == "render_error" else InternalError
            job.finish(None, kind(str(err.get("message", ""))))

    def _retire(self, ws: WorkerState) -> None:
        """Replace a worker on purpose (recycling, hard deadline): no backoff."""
        self.workers.pop(ws.identity, None)
        if ws.slot is not None:
            self.supervisor.restart(ws.slot, blame=False)
        else:
            self._dismiss(ws)

    def _dismiss(self, ws: WorkerState) -> None:
        """Tell a remote worker the farm dropped it, so its worker host replaces it (a
        dropped worker that stayed would never get work again); best effort."""
        try:
            ws.socket.send_multipart(
                [ws.identity.encode(), *codec.encode({"kind": "exit"})], zmq.NOBLOCK
            )
        except zmq.ZMQError:  # unreachable: its host replays `ready` when it reconnects
            pass

    def _lost(self, ws: WorkerState, why: str) -> None:
        """A worker died or went silent: replace it, retry or fail its job."""
        job, ws.job = ws.job, None
        log.warning(
            "worker %s lost (%s)%s", ws.identity, why, f" running job {job.jid}" if job else ""
        )
        self.workers.pop(ws.identity, None)
        if ws.slot is not None:  # a death during a job may be the job's fault: no blame
            self.supervisor.restart(ws.slot, blame=job is None)
        else:
            self._dismiss(ws)
        if job is None:
            return
        job.worker = None
        if job.attempts < self.config.max_attempts:
            self.metrics.retries += 1
            self.queues[job.role].appendleft(job)
        elif job.kind == "step":
            job.finish(
                ScriptRun.ended(
                    "poisoned",
                    f"the script's worker died on each of {job.attempts} attempts ({why})",
                ).to_wire(),
                None,
            )
        else:
            job.finish(None, WorkerLost(f"the render's worker died {job.attempts} times ({why})"))

    def supervise(self) -> None:
        """Replace dead, silent, never-ready and overdue workers; start due restarts."""
        now = time.monotonic()
        exited = {wp.identity for wp in self.supervisor.exited()}
        for ws in list(self.workers.values()):
            if ws.identity in exited:
                self._lost(ws, "process exited")
            elif ws.state == "starting":
                if now - ws.started > self.config.start_timeout:
                    self._lost(ws, f"not ready after {self.config.start_timeout:g} s")
            elif now - ws.last_beat > self.config.heartbeat_timeout and not (
                # A local worker busy in a C call holds the GIL, so its heartbeat thread
                # cannot beat: unless its process is stopped, the hard deadline decides.
                ws.job is not None
                and ws.slot is not None
                and not self.supervisor.is_stopped(ws.identity)
            ):
                self._lost(ws, f"no heartbeat for {self.config.heartbeat_timeout:g} s")
            elif ws.job is not None and now - ws.job.started > self.config.hard_deadline:
                job, ws.job = ws.job, None
                self._retire(ws)
                msg = f"killed at the farm's hard deadline of {self.config.hard_deadline:g} s"
                if job.kind == "step":
                    job.finish(ScriptRun.ended("timeout", msg).to_wire(), None)
                else:
                    job.finish(None, RequestTimeout(msg))
        for wp in self.supervisor.spawn_due():
            self.register(wp)
