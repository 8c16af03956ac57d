"""The message loop every farm worker runs, whatever it renders: Blender or SVG.

A worker process connects a DEALER (identity ``ID``) to its role's local ``ipc://``
backend, says ``ready`` (with its pid, role and frame hash), then answers one job at a time
through a *job runner* (``handle(job) -> result members``); a second DEALER (``ID#hb``)
owned by a heartbeat thread says ``hb`` every ``heartbeat_interval`` seconds. The runners
are :class:`derender.addon.worker.Worker` (headless Blender) and
:class:`derender.farm.svg_worker.SvgWorker` (cairosvg, no Blender); the messages are those of
the ``addon.worker`` docstring.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import zmq

from ..protocol import codec
from .config import FarmConfig
from .os_sandbox import UnconfinedWorker


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


def require_confinement(gaps: Sequence[str]) -> None:
    """Refuse an untrusted job in a worker outside the OS sandbox (``gaps``: what
    :func:`.os_sandbox.confinement_gaps` found; empty inside it or with the sandbox off)."""
    if gaps:
        raise UnconfinedWorker(
            f"this worker refuses untrusted scripts: it is not in the OS sandbox "
            f"({'; '.join(gaps)}). Install bubblewrap (apt-get install "
            "bubblewrap), or start the farm with --no-os-sandbox to accept the risk"
        )


class JobRunner(Protocol):
    """What the loop drives: a frame (anything with ``hash()``) and ``handle``."""

    frame: Any

    def handle(self, job: dict[str, Any]) -> dict[str, Any]: ...


# Builds a role's job runner once the sockets are up (a Blender one takes seconds).
RunnerFactory = Callable[[FarmConfig, str], JobRunner]


def serve(config: FarmConfig, conn: Connection, role: str, make: RunnerFactory) -> int:
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
        worker = make(config, role)
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


def main(argv: Sequence[str] | None, make: RunnerFactory, prog: str, roles: Sequence[str]) -> int:
    """A worker's command line (the supervisor's ``worker_args``), then :func:`serve`."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--connect", required=True, help="the local ipc:// backend to serve")
    parser.add_argument("--identity", required=True, help="this worker's id (from the supervisor)")
    parser.add_argument("--role", choices=tuple(roles), default=roles[0], help="its job kind")
    parser.add_argument("--config", required=True, help="the FarmConfig as JSON")
    args = parser.parse_args(argv)
    config = FarmConfig.from_dict(json.loads(args.config))
    try:
        conn = Connection(args.connect, args.identity)
    except NotLocalBackend as exc:
        parser.error(str(exc))
    return serve(config, conn, args.role, make)
