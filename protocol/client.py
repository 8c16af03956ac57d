"""The synchronous client: ``from derender import Client``.

One DEALER socket. Idempotent calls (``ping``, ``info``, ``reset``, ``render``) follow
the Lazy Pirate pattern: on a timeout the socket is dropped, a new one connects and the
request is sent again, ``retries`` times, then :class:`ClientTimeout` (a TimeoutError).
``step`` is not retried (a script may have side effects on the worker; the caller
decides). Error replies raise the typed :class:`~.errors.ProtocolError` of their code
(``UnknownTarget``, ``Overloaded`` ...), with the server's ``.code`` and ``.message``.
``step_many`` pipelines many ``step`` requests over the one socket and matches replies by
id, so a farm can work on them in parallel. ``ping(timeout=...)`` is a liveness probe:
ZeroMQ connects to an address where nothing listens without complaint, so callers that
must fail fast (the trainer adapters, the Gymnasium env) ping first and get
:class:`ServerUnreachable` within seconds instead of waiting out a step's timeout.

A socket belongs to one thread: share a Client between threads only under a lock, or give
each thread its own (``integrations.core`` keeps one per thread).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq

from ..scenes import Scene
from . import codec
from .errors import RETRYABLE, ClientTimeout, ProtocolError, ServerUnreachable, error_from_wire
from .keys import KeyPair, load_keys
from .messages import (
    DatasetTarget,
    Info,
    Ping,
    Render,
    Request,
    Reset,
    SceneTarget,
    SeedTarget,
    Status,
    Step,
    StepBatch,
    StepItem,
    SvgTarget,
    TargetSpec,
)
from .results import RenderResult, ServerInfo, StepResult, target_from_wire
from .targets import Target

TargetLike = TargetSpec | Target | str


def as_target_spec(target: TargetLike) -> TargetSpec | str:
    """A Target (from reset) is sent by its id; a Scene as a scene spec."""
    if isinstance(target, Target):
        return target.target_id
    if isinstance(target, Scene):
        return SceneTarget(target)
    return target


def reset_spec(
    seed: int | None,
    index: int,
    scene: Scene | None,
    dataset: str | None,
    svg: str | None = None,
) -> TargetSpec:
    given = [x is not None for x in (seed, scene, dataset, svg)]
    if sum(given) != 1:
        raise ValueError("reset needs exactly one of seed=, scene=, dataset=, svg=")
    if seed is not None:
        return SeedTarget(seed, index)
    if svg is not None:
        return SvgTarget(svg)
    if scene is not None:
        return SceneTarget(scene)
    assert dataset is not None
    return DatasetTarget(dataset, index)


class ClientBase:
    """Socket set-up, request ids and reply decoding shared by the sync and async clients."""

    def __init__(
        self,
        address: str,
        timeout: float = 60.0,
        retries: int = 2,
        *,
        server_key: bytes | str | Path | None = None,
        client_keys: KeyPair | str | Path | None = None,
        encoding: str = "raw",
    ) -> None:
        if timeout <= 0 or retries < 0:
            raise ValueError(f"need timeout > 0 and retries >= 0, got {timeout}, {retries}")
        if encoding not in codec.ENCODINGS:
            raise ValueError(f"encoding must be one of {codec.ENCODINGS}, got {encoding!r}")
        self.address = address
        self.timeout = timeout
        self.retries = retries
        self.encoding = encoding
        self._curve = _curve_keys(server_key, client_keys)
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}.{os.urandom(3).hex()}"

    def _next_id(self) -> str:
        return f"{self._prefix}.{next(self._ids)}"

    def _configure(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.LINGER, 0)
        if self._curve is not None:
            server_public, mine = self._curve
            sock.curve_serverkey = server_public
            sock.curve_publickey = mine.public
            sock.curve_secretkey = mine.secret
        sock.connect(self.address)

    # -- requests, built once for both clients (sans I/O) -------------------------------
    def _reset_request(
        self,
        seed: int | None,
        index: int,
        scene: Scene | None,
        dataset: str | None,
        masks: bool,
        env: str = "clevr",
        svg: str | None = None,
    ) -> Reset:
        spec = reset_spec(seed, index, scene, dataset, svg)
        kind = None if env == "clevr" and svg is None else "svg" if svg is not None else env
        return Reset(self._next_id(), spec, masks, self.encoding, kind)

    def _step_requests(
        self,
        scripts: Sequence[str],
        targets: TargetLike | Sequence[TargetLike],
        seeds: Sequence[int] | None,
        preset: str | None,
        masks: bool,
        render: bool,
    ) -> list[Step]:
        items = _items(scripts, targets, seeds)
        return [Step(self._next_id(), it, preset, masks, self.encoding, render) for it in items]

    def _batch_request(
        self,
        scripts: Sequence[str],
        targets: TargetLike | Sequence[TargetLike],
        seeds: Sequence[int] | None,
        preset: str | None,
        masks: bool,
        render: bool,
    ) -> StepBatch:
        items = tuple(_items(scripts, targets, seeds))
        return StepBatch(self._next_id(), items, preset, masks, self.encoding, render)

    def _render_request(self, scene: Scene, masks: bool) -> Render:
        return Render(self._next_id(), scene, masks, self.encoding)

    @staticmethod
    def _batch_results(reply: dict[str, Any]) -> list[StepResult | ProtocolError]:
        return [_batch_result(r) for r in reply["results"]]

    @staticmethod
    def _unpack(frames: Sequence[Any]) -> dict[str, Any]:
        if frames and len(frames[0]) == 0:  # the empty delimiter we sent, echoed
            frames = frames[1:]
        return codec.decode(frames, codec.CodecLimits(max_frames=1 << 16))

    @staticmethod
    def _check(reply: dict[str, Any]) -> dict[str, Any]:
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise error_from_wire(err, reply.get("id"))
        return reply

    def _frames(self, req: Request) -> list[bytes]:
        return [b"", *codec.encode(req.to_wire())]


def _curve_keys(
    server_key: bytes | str | Path | None, client_keys: KeyPair | str | Path | None
) -> tuple[bytes, KeyPair] | None:
    if server_key is None:
        if client_keys is not None:
            raise ValueError("client_keys need server_key (the server's public key)")
        return None
    public = server_key if isinstance(server_key, bytes) else load_keys(server_key).public
    if client_keys is None:  # an ephemeral pair: only useful against an open allow-list
        pub, sec = zmq.curve_keypair()
        mine = KeyPair(pub, sec)
    else:
        mine = client_keys if isinstance(client_keys, KeyPair) else load_keys(client_keys)
    if mine.secret is None:
        raise ValueError("client_keys must include the secret key (a .key_secret file)")
    return public, mine


class Client(ClientBase):
    """Blocking client for one server address; see the module docstring."""

    def __init__(self, address: str, timeout: float = 60.0, retries: int = 2, **kw: Any) -> None:
        super().__init__(address, timeout, retries, **kw)
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._connect()

    def _connect(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
        self._sock = self._ctx.socket(zmq.DEALER)
        self._configure(self._sock)

    # -- plumbing -------------------------------------------------------------------
    def _send(self, req: Request, timeout: float) -> None:
        """Queue ``req``, or ClientTimeout: ZeroMQ blocks a DEALER's send while it has no
        connection to queue on (a server that refused the CURVE handshake drops it)."""
        assert self._sock is not None
        self._sock.sndtimeo = max(1, int(timeout * 1000))
        try:
            self._sock.send_multipart(self._frames(req))
        except zmq.Again:
            raise ClientTimeout(
                f"could not send to {self.address} within {timeout:g} s: no connection"
            ) from None

    def _recv(self, wanted: set[str], timeout: float) -> dict[str, Any]:
        """The next reply whose id is in ``wanted``; stale replies are skipped."""
        assert self._sock is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1):
                raise ClientTimeout(f"no reply from {self.address} within {timeout:g} s")
            reply = self._unpack(self._sock.recv_multipart())
            if reply.get("id") in wanted:
                return reply

    def _call(
        self,
        req: Request,
        idempotent: bool,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> dict[str, Any]:
        attempts = 1 + ((self.retries if retries is None else retries) if idempotent else 0)
        wait = self.timeout if timeout is None else timeout
        for attempt in range(attempts):
            try:
                self._send(req, wait)
                reply = self._recv({str(req.id)}, wait)
            except ClientTimeout:
                self._connect()  # Lazy Pirate: a fresh socket drops the stuck request
                if attempt + 1 == attempts:
                    raise
                continue
            err = (reply.get("error") or {}).get("code")
            if idempotent and err in RETRYABLE and attempt + 1 < attempts:
                time.sleep(0.05 * 2**attempt)
                continue
            return self._check(reply)
        raise AssertionError("unreachable: the loop returns or raises")

    # -- requests -------------------------------------------------------------------
    def ping(self, timeout: float | None = None) -> float:
        """Round-trip time in seconds. With ``timeout``: one probe, and
        :class:`ServerUnreachable` if nothing answers within it."""
        t0 = time.perf_counter()
        if timeout is None:
            self._call(Ping(self._next_id()), idempotent=True)
        else:
            try:
                self._call(Ping(self._next_id()), idempotent=True, timeout=timeout, retries=0)
            except ClientTimeout:
                raise ServerUnreachable(self.address, timeout) from None
        return time.perf_counter() - t0

    def info(self) -> ServerInfo:
        return ServerInfo.from_wire(self._call(Info(self._next_id()), idempotent=True))

    def status(self, timeout: float | None = None) -> dict[str, Any]:
        """A farm's ``status`` body: workers, queue, rates, latencies, restarts."""
        return self._call(Status(self._next_id()), idempotent=True, timeout=timeout)

    def reset(
        self,
        seed: int | None = None,
        index: int = 0,
        *,
        scene: Scene | None = None,
        dataset: str | None = None,
        masks: bool = True,
        env: str = "clevr",
        svg: str | None = None,
    ) -> Target:
        """Make (render and cache) a target on the server; returns it with its id.

        ``env="svg"``: a seeded SVG composition (or ``svg=``, a document of your own);
        steps against it take SVG documents as their scripts."""
        req = self._reset_request(seed, index, scene, dataset, masks, env, svg)
        return target_from_wire(self._call(req, idempotent=True))

    def step(
        self,
        script: str,
        target: TargetLike,
        seed: int = 0,
        preset: str | None = None,
        masks: bool = False,
        render: bool = True,
    ) -> StepResult:
        """Run and score one script against a target (a Target, its id, or a spec)."""
        (req,) = self._step_requests([script], target, [seed], preset, masks, render)
        return StepResult.from_wire(self._call(req, idempotent=False))

    def step_many(
        self,
        scripts: Sequence[str],
        targets: TargetLike | Sequence[TargetLike],
        seeds: Sequence[int] | None = None,
        preset: str | None = None,
        masks: bool = False,
        render: bool = True,
        window: int = 64,
        return_exceptions: bool = False,
    ) -> list[StepResult | ProtocolError]:
        """Pipelined steps (up to ``window`` in flight); results in the order of scripts."""
        reqs = self._step_requests(scripts, targets, seeds, preset, masks, render)
        index = {str(r.id): i for i, r in enumerate(reqs)}
        out: list[Any] = [None] * len(reqs)
        sent = done = 0
        assert self._sock is not None
        while done < len(reqs):
            try:
                while sent < len(reqs) and sent - done < window:
                    self._send(reqs[sent], self.timeout)
                    sent += 1
                reply = self._recv(set(index), self.timeout)
            except ClientTimeout:
                self._connect()
                raise
            i = index.pop(reply["id"])
            try:
                out[i] = StepResult.from_wire(self._check(reply))
            except ProtocolError as exc:
                if not return_exceptions:
                    self._connect()  # replies still in flight must not reach later calls
                    raise
                out[i] = exc
            done += 1
        return out

    def step_batch(
        self,
        scripts: Sequence[str],
        targets: TargetLike | Sequence[TargetLike],
        seeds: Sequence[int] | None = None,
        preset: str | None = None,
        masks: bool = False,
        render: bool = True,
    ) -> list[StepResult | ProtocolError]:
        """One ``step_batch`` message; a failed item is its typed ProtocolError in its slot."""
        req = self._batch_request(scripts, targets, seeds, preset, masks, render)
        return self._batch_results(self._call(req, idempotent=False))

    def render(self, scene: Scene, masks: bool = True) -> RenderResult:
        req = self._render_request(scene, masks)
        return RenderResult.from_wire(self._call(req, idempotent=True))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _items(
    scripts: Sequence[str],
    targets: TargetLike | Sequence[TargetLike],
    seeds: Sequence[int] | None,
) -> list[StepItem]:
    """One StepItem per script; a single target applies to all of them."""
    if isinstance(scripts, str):
        raise TypeError("scripts must be a sequence of strings, not one string")
    n = len(scripts)
    tlist: list[TargetLike] = (
        list(targets) if isinstance(targets, list | tuple) else [targets] * n  # type: ignore[list-item]
    )
    slist = list(seeds) if seeds is not None else [0] * n
    if len(tlist) != n or len(slist) != n:
        raise ValueError(f"{n} scripts need {n} targets and seeds, got {len(tlist)}, {len(slist)}")
    return [
        StepItem(s, as_target_spec(t), sd) for s, t, sd in zip(scripts, tlist, slist, strict=True)
    ]


def _batch_result(data: dict[str, Any]) -> StepResult | ProtocolError:
    if "error" in data:
        err = data["error"]
        return error_from_wire(err)
    return StepResult.from_wire(data)
