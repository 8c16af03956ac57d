"""The add-on's ZeroMQ server: a ROUTER socket around one request handler.

Only transport lives here (sockets, envelopes, queueing, CURVE, the loop); what a request
means is :class:`derender.protocol.handler.Handler`. ``poll_once(budget_s)`` does one
bounded slice of work and is used both by the headless blocking loop (``serve_forever``,
``derender serve``) and by the GUI's ``bpy.app.timers`` callback (``start_timer``), where
the per-tick budget keeps Blender's UI responsive.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from ..protocol import codec
from ..protocol.errors import Overloaded, ProtocolError
from ..protocol.handler import Handler, error_reply
from ..protocol.messages import request_id
from ..protocol.transport import (
    CurveConfig,
    check_addresses,
    make_curve_server,
    split_envelope,
    start_authenticator,
)

SOCKET_HWM = 4096  # messages


class Server:
    """ROUTER server for one handler. Not thread-safe: use it from one thread (bpy's)."""

    def __init__(
        self,
        handler: Handler,
        addresses: str | Sequence[str],
        curve: CurveConfig | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.handler = handler
        self.limits = handler.limits
        addrs = [addresses] if isinstance(addresses, str) else list(addresses)
        check_addresses(addrs, curve)
        self._ctx = context or zmq.Context.instance()
        self._auth: Any = None
        self.socket = self._ctx.socket(zmq.ROUTER)
        s = self.socket
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.MAXMSGSIZE, self.limits.max_frame_bytes)
        # Socket queues deeper than the request queue: a burst beyond max_pending gets a
        # prompt ``overloaded`` reply instead of silent back-pressure.
        hwm = max(SOCKET_HWM, 2 * self.limits.max_pending)
        s.setsockopt(zmq.SNDHWM, hwm)
        s.setsockopt(zmq.RCVHWM, hwm)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)  # replies to vanished peers fail fast
        if curve is not None:
            make_curve_server(s, curve)  # first: it fails on a bad key file
            self._auth = start_authenticator(self._ctx, curve)
        self.endpoints: list[str] = []
        try:
            for a in addrs:
                s.bind(a)
                self.endpoints.append(s.getsockopt(zmq.LAST_ENDPOINT).decode())
        except zmq.ZMQError:
            self.close()
            raise
        self._pending: deque[list[bytes]] = deque()
        self._timer: Any = None
        # The GUI sets this to adopt the person's own datablocks before each request.
        self.before_request: Callable[[], object] | None = None
        self.handled = 0
        self.dropped = 0

    # -- the loop -----------------------------------------------------------------
    def poll_once(self, budget_s: float, wait_s: float = 0.0) -> int:
        """Receive what has arrived, then answer requests until ``budget_s`` is spent.

        Waits up to ``wait_s`` for a first message when nothing is queued. At least one
        queued request is answered per call; the rest stay queued for the next call.
        Requests beyond ``max_pending`` are answered ``overloaded`` at once. Returns the
        number of requests answered.
        """
        deadline = time.perf_counter() + budget_s
        if not self._pending and wait_s > 0:
            self.socket.poll(int(wait_s * 1000))
        self._drain(deadline)
        done = 0
        while self._pending and (done == 0 or time.perf_counter() < deadline):
            frames = self._pending.popleft()
            envelope, body = split_envelope(frames)
            if self.before_request is not None:
                self.before_request()
            self._send(envelope + self.handler.handle_frames(body))
            done += 1
        self.handled += done
        return done

    def _drain(self, deadline: float) -> None:
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(self._pending) < self.limits.max_pending:
                self._pending.append(frames)
            else:
                self._reject(frames)
            if time.perf_counter() >= deadline and self._pending:
                return

    def _reject(self, frames: list[bytes]) -> None:
        envelope, body = split_envelope(frames)
        rid = None
        try:  # echo the id when the header is readable; the reply is typed either way
            rid = request_id(codec.decode_header(body[0], self.limits.codec()), self.limits)
        except (ProtocolError, IndexError):
            pass
        exc = Overloaded(f"{len(self._pending)} requests are queued; retry later")
        self._send(envelope + codec.encode(error_reply(rid, "error", exc)))

    def _send(self, frames: list[bytes]) -> None:
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:  # the peer stopped reading (HWM full): drop, never block
            self.dropped += 1
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:  # the peer disconnected mid-request
                raise
            self.dropped += 1

    def serve_forever(self, should_stop: Any = lambda: False, wait_s: float = 0.1) -> None:
        """The headless loop: block in poll until ``should_stop()`` turns true."""
        while not should_stop():
            self.poll_once(budget_s=1.0, wait_s=wait_s)

    # -- Blender GUI ---------------------------------------------------------------
    def start_timer(self, interval_s: float = 0.05, budget_s: float = 0.01) -> None:
        """Serve from ``bpy.app.timers`` (GUI only: timers never fire headless)."""
        import bpy

        if self._timer is not None:
            return

        def tick() -> float:
            self.poll_once(budget_s)
            return 0.0 if self._pending else interval_s

        self._timer = tick
        bpy.app.timers.register(tick, first_interval=0.0, persistent=True)

    def stop_timer(self) -> None:
        import bpy

        if self._timer is not None and bpy.app.timers.is_registered(self._timer):
            bpy.app.timers.unregister(self._timer)
        self._timer = None

    def close(self) -> None:
        """Stop the timer, close the socket and the authenticator; idempotent."""
        if self._timer is not None:
            self.stop_timer()
        if not self.socket.closed:
            self.socket.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
