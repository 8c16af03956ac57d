"""The worker process: one headless Blender serving jobs from the farm's broker.

``python -m derender.addon.worker --connect ipc://SOCK --identity ID --role ROLE --config JSON``,
started by a :class:`~derender.farm.supervisor.Supervisor` (the farm's own, or a worker
host's on another machine: :mod:`derender.farm.remote`). A worker only ever connects to a
local ``ipc://`` socket and holds no key: on another host the trusted worker host holds
the CURVE keys and relays its frames to the farm, so a script that escapes finds neither
a key nor a network. The worker
connects a DEALER socket (identity ``ID``) to that ROUTER, says ``ready`` once Blender is
up, then answers one job at a time with :class:`addon.service.Service`
(the same code path as ``derender serve``). A second DEALER (identity ``ID#hb``) owned by
a heartbeat thread says ``hb`` every ``heartbeat_interval`` seconds: a SIGSTOPped or
wedged process stops beating and is replaced. A script that spins in Python keeps the
heartbeat thread alive, which is why the broker also enforces a per-job hard deadline.

A worker has one role. A ``step`` worker runs agent scripts and nothing else: it never
sees a target (no job it gets names one), so a script that reads its whole process finds
no answer to copy. A ``target`` worker renders targets and client scenes and never runs a
script. Each refuses the other role's jobs.

Internal messages (codec frames, never pickled) — worker to broker:
``{"kind": "ready", "pid", "frame_hash", "role"}``, ``{"kind": "hb", "rss"}``,
``{"kind": "result", "job", "ok": true, ...result members}`` or
``{"kind": "result", "job", "ok": false, "error": {"code", "message"}}``;
broker to worker: ``{"kind": "step", "job", "script", "seed", "masks", "render"}``,
``{"kind": "render", "job", "scene", "masks"}``.

A worker runs untrusted scripts only inside the OS sandbox (:mod:`.os_sandbox`): one that
finds itself unconfined (bwrap missing, or started by hand) answers every step with an
error that says why, unless the farm's config turns the sandbox off (``os_sandbox``).
Trusted target renders run either way.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import zmq

from ..farm.config import FarmConfig
from ..farm.os_sandbox import UnconfinedWorker, confinement_gaps
from ..protocol import codec
from ..scenes import Scene, scene_from_clevr


def rss_bytes() -> int:
    """This process's resident set size now (not the peak), from /proc."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class NotLocalBackend(ValueError):
    """A worker was pointed at something other than a local ``ipc://`` socket."""


@dataclass(frozen=True)
class Connection:
    """The local ``ipc://`` ROUTER a worker serves (the broker's, or a worker host's)."""

    address: str
    identity: str

    def __post_init__(self) -> None:
        if not self.address.startswith("ipc://"):
            raise NotLocalBackend(
                f"a worker connects only to a local ipc:// socket, not {self.address!r}; "
                "on another host, `derender farm join` runs the workers and reaches the farm"
            )

    def socket(self, ctx: zmq.Context, identity: str) -> zmq.Socket:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, identity.encode())
        return sock


def _heartbeat(ctx: zmq.Context, conn: Connection, interval: float, stop: threading.Event) -> None:
    sock = conn.socket(ctx, f"{conn.identity}#hb")
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 4)  # a broker that is gone must not make beats pile up
    sock.connect(conn.address)
    try:
        while not stop.wait(interval):
            try:
                sock.send_multipart(codec.encode({"kind": "hb", "rss": rss_bytes()}), zmq.NOBLOCK)
            except zmq.Again:
                pass
    finally:
        sock.close(0)


class WrongRole(ValueError):
    """A job of a kind this worker's role does not run (a script sent to a target worker)."""


class Worker:
    """Runs jobs against one Service; ``handle`` maps a job dict to a reply dict."""

    def __init__(self, config: FarmConfig, role: str) -> None:
        from .sandbox.limits import ScriptLimits
        from .service import Service

        self.config = config
        self.role = role
        limits = ScriptLimits(deadline_s=config.sandbox_deadline, **config.options)
        self.service = Service(config.frame(), limits)
        self.frame = self.service.frame
        # The first render compiles shaders (seconds under software GL): do it before
        # `ready`, so it never counts against a job's hard deadline or a benchmark.
        self.service.render_scene(Scene(()), masks=True)
        self.unconfined = confinement_gaps() if config.os_sandbox else []

    def handle(self, job: dict[str, Any]) -> dict[str, Any]:
        kind = job.get("kind")
        if (kind == "step") != (self.role == "step"):
            raise WrongRole(f"a {self.role} worker does not run {kind!r} jobs")
        if kind == "step":
            return self._step(job)
        if kind == "render":
            res = self.service.render_scene(
                scene_from_clevr(job["scene"]), masks=bool(job.get("masks", True))
            )
            return {"image": res.image, "masks": res.masks, "timings": dict(res.timings)}
        raise ValueError(f"unknown job kind {kind!r}")

    def _step(self, job: dict[str, Any]) -> dict[str, Any]:
        script = job["script"]
        if self.unconfined:
            raise UnconfinedWorker(
                f"this worker refuses untrusted scripts: it is not in the OS sandbox "
                f"({'; '.join(self.unconfined)}). Install bubblewrap (apt-get install "
                "bubblewrap), or start the farm with --no-os-sandbox to accept the risk"
            )
        t0 = time.perf_counter()
        masks, render = bool(job.get("masks", False)), bool(job.get("render", True))
        res = self.service.step(script, int(job.get("seed", 0)), masks=masks, render=render)
        timings = {**res.timings, "service": time.perf_counter() - t0}
        return replace(res, timings=timings).to_wire(self.frame)


def serve(config: FarmConfig, conn: Connection, role: str) -> int:
    """Connect, say ready, answer jobs until the broker says exit or the parent dies."""
    parent = os.getppid()
    ctx = zmq.Context()
    stop = threading.Event()
    beat = threading.Thread(
        target=_heartbeat,
        args=(ctx, conn, config.heartbeat_interval, stop),
        name="heartbeat",
        daemon=True,
    )
    beat.start()
    sock = conn.socket(ctx, conn.identity)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(conn.address)
    try:
        worker = Worker(config, role)
        ready = {"kind": "ready", "pid": os.getpid(), "frame_hash": worker.frame.hash()}
        sock.send_multipart(codec.encode({**ready, "role": role}))
        while True:
            if not sock.poll(1000):
                if os.getppid() != parent:  # orphaned: the supervisor is gone
                    return 0
                continue
            job = codec.decode(sock.recv_multipart())
            if job.get("kind") == "exit":
                return 0
            try:
                reply = {"ok": True, **worker.handle(job)}
            except Exception as exc:  # a derender bug or a failed trusted render
                reply = {
                    "ok": False,
                    "error": {
                        "code": "render_error" if job.get("kind") == "render" else "internal",
                        "message": f"{type(exc).__name__}: {exc}",
                    },
                }
            reply.update(kind="result", job=job.get("job"), rss=rss_bytes())
            sock.send_multipart(codec.encode(reply))
    finally:
        stop.set()
        beat.join(timeout=2)
        sock.close()
        ctx.term()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m derender.addon.worker")
    parser.add_argument("--connect", required=True, help="the local ipc:// backend to serve")
    parser.add_argument("--identity", required=True, help="this worker's id (from the supervisor)")
    parser.add_argument(
        "--role", choices=("step", "target"), default="step", help="run scripts or targets"
    )
    parser.add_argument("--config", required=True, help="the FarmConfig as JSON")
    args = parser.parse_args(argv)
    config = FarmConfig.from_dict(json.loads(args.config))
    try:
        conn = Connection(args.connect, args.identity)
    except NotLocalBackend as exc:
        parser.error(str(exc))
    return serve(config, conn, args.role)


if __name__ == "__main__":
    raise SystemExit(main())
