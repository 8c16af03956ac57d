"""The broker's sockets: bound, secured and polled, and the one way a reply is sent.

- the frontend: a ROUTER for clients on every ``bind`` address; loopback endpoints stay
  plain (as with ``derender serve``), any other needs CURVE keys;
- one ``ipc://`` backend per worker role, each in a directory of its own (the OS sandbox
  mounts only the worker's own), never CURVE;
- the remote backend for worker hosts that join (``farm join``), CURVE unless loopback;
- the monitor: a PUB of every reply, for viewers (a slow viewer misses replies, never
  blocks the farm).

Every ROUTER drops what it cannot deliver: a reply to a vanished or stalled client is
counted as dropped, never blocks the event loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import zmq

from ..protocol import codec
from ..protocol.transport import (
    CurveConfig,
    InsecureBind,
    check_addresses,
    is_loopback,
    make_curve_server,
    start_authenticator,
)
from .config import FarmConfig
from .jobs import ROLES


class BrokerSockets:
    """Owns every socket of one broker; ``poll`` says which have messages."""

    def __init__(
        self, config: FarmConfig, run_dir: Path, max_frame_bytes: int, context: zmq.Context
    ) -> None:
        binds = list(config.bind) or ["tcp://127.0.0.1:*"]
        curve = None
        if config.curve_secret is not None:
            curve = CurveConfig(Path(config.curve_secret), Path(config.curve_clients or ""))
        remote = [config.remote_backend] if config.remote_backend else []
        check_addresses([*binds, *remote], curve)
        if config.monitor is not None and not is_loopback(config.monitor):
            raise InsecureBind(f"the monitor {config.monitor!r} must be loopback or ipc")
        self._ctx = context
        self._auth: Any = None
        self.frontend = self._router(max_frame_bytes)
        # An endpoint takes the socket's security options when it is bound, so loopback
        # endpoints are bound first, before CURVE is switched on, and stay plain.
        bound = {
            bind: self._bind(self.frontend, bind, None if is_loopback(bind) else curve)
            for bind in sorted(binds, key=lambda b: not is_loopback(b))
        }
        self.addresses = [bound[bind] for bind in binds]
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
        self.monitor: zmq.Socket | None = None
        if config.monitor is not None:
            self.monitor = self._ctx.socket(zmq.PUB)
            self.monitor.setsockopt(zmq.LINGER, 0)
            self.monitor.setsockopt(zmq.SNDHWM, 16)
            self.monitor.bind(config.monitor)
        self._poller = zmq.Poller()
        for polled in (self.frontend, *self.backends.values(), self.remote):
            if polled is not None:
                self._poller.register(polled, zmq.POLLIN)

    def _router(self, max_msg: int) -> zmq.Socket:
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a vanished peer fails fast
        sock.setsockopt(zmq.MAXMSGSIZE, max_msg)
        return sock

    def _bind(self, sock: zmq.Socket, address: str, curve: CurveConfig | None) -> str:
        """Bind and return the bound endpoint (with the port the OS picked); with
        ``curve``, this endpoint (and later ones) require CURVE keys."""
        if curve is not None:
            make_curve_server(sock, curve)
            if self._auth is None:
                self._auth = start_authenticator(self._ctx, curve)
        sock.bind(address)
        return cast(bytes, sock.getsockopt(zmq.LAST_ENDPOINT)).decode()

    @property
    def worker_sockets(self) -> list[zmq.Socket]:
        """The sockets workers reach the broker on: local backends, then the remote one."""
        return [*self.backends.values(), *([self.remote] if self.remote is not None else [])]

    def poll(self, wait_s: float) -> set[zmq.Socket]:
        """The sockets with messages, after waiting at most ``wait_s``."""
        return {sock for sock, _ in self._poller.poll(int(wait_s * 1000))}

    def reply(self, envelope: list[bytes], reply: dict[str, Any], encoding: str) -> bool:
        """Send a reply to the client behind ``envelope``; False if it was dropped (the
        client vanished or stopped reading)."""
        try:
            self.frontend.send_multipart(envelope + codec.encode(reply, encoding), zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            return False
        return True

    def publish(self, kind: str, reply: dict[str, Any]) -> None:
        """Show a reply on the monitor, if there is one and it keeps up."""
        if self.monitor is None:
            return
        try:
            self.monitor.send_multipart(
                codec.encode({"kind": kind, "reply": reply}, "raw"), zmq.NOBLOCK
            )
        except zmq.Again:
            pass

    def close(self) -> None:
        for sock in (self.frontend, *self.backends.values(), self.remote, self.monitor):
            if sock is not None:
                sock.close(0)
        if self._auth is not None:
            self._auth.stop()
        for address in (*self.addresses, *self.backend_addresses.values()):
            if address.startswith("ipc://"):  # zmq leaves the socket file behind
                Path(address.removeprefix("ipc://")).unlink(missing_ok=True)
