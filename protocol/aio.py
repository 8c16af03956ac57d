"""The asyncio client: many concurrent awaits share one DEALER socket.

A reader task routes each reply to the future of its request id, so
``await asyncio.gather(*(client.step(s, t) for s in scripts))`` pipelines naturally.
Idempotent calls are re-sent on timeout (``retries`` times) on the same socket, because
other requests are in flight on it; ZeroMQ reconnects a DEALER by itself. ``ping(timeout=)``
is the same liveness probe as the sync client's (:class:`ServerUnreachable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import zmq
import zmq.asyncio

from ..scenes import Scene
from . import codec
from .client import ClientBase, TargetLike
from .errors import RETRYABLE, ClientTimeout, ProtocolError, ServerUnreachable
from .messages import Info, Ping, Request, Status, Step
from .results import RenderResult, ServerInfo, StepResult, target_from_wire
from .targets import Target


class AsyncClient(ClientBase):
    """asyncio twin of :class:`derender.protocol.client.Client` (same methods, awaited)."""

    def __init__(self, address: str, timeout: float = 60.0, retries: int = 2, **kw: Any) -> None:
        super().__init__(address, timeout, retries, **kw)
        self._ctx = zmq.asyncio.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._configure(self._sock)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        while True:
            frames = await self._sock.recv_multipart()
            try:
                reply = self._unpack(frames)
            except ProtocolError:  # an unreadable reply answers nobody; keep reading
                continue
            fut = self._waiting.pop(str(reply.get("id")), None)
            if fut is not None and not fut.done():  # else: a stale reply to a retried request
                fut.set_result(reply)

    async def _exchange(
        self, frames: list[bytes], reply: asyncio.Future[dict[str, Any]]
    ) -> dict[str, Any]:
        await self._sock.send_multipart([b"", *frames])
        return await reply

    async def _call(
        self,
        req: Request,
        idempotent: bool,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> dict[str, Any]:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        attempts = 1 + ((self.retries if retries is None else retries) if idempotent else 0)
        wait = self.timeout if timeout is None else timeout
        for attempt in range(attempts):
            rid = self._next_id() if attempt else str(req.id)
            wire = {**req.to_wire(), "id": rid}
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._waiting[rid] = fut
            try:  # the send too: ZeroMQ holds it while there is no connection to queue on
                reply = await asyncio.wait_for(self._exchange(codec.encode(wire), fut), wait)
            except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
                self._waiting.pop(rid, None)
                if attempt + 1 == attempts:
                    raise ClientTimeout(f"no reply from {self.address} within {wait:g} s") from None
                continue
            err = (reply.get("error") or {}).get("code")
            if idempotent and err in RETRYABLE and attempt + 1 < attempts:
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            return self._check(reply)
        raise AssertionError("unreachable: the loop returns or raises")

    async def ping(self, timeout: float | None = None) -> float:
        t0 = time.perf_counter()
        if timeout is None:
            await self._call(Ping(self._next_id()), idempotent=True)
        else:
            try:
                await self._call(Ping(self._next_id()), idempotent=True, timeout=timeout, retries=0)
            except ClientTimeout:
                raise ServerUnreachable(self.address, timeout) from None
        return time.perf_counter() - t0

    async def info(self) -> ServerInfo:
        return ServerInfo.from_wire(await self._call(Info(self._next_id()), idempotent=True))

    async def status(self, timeout: float | None = None) -> dict[str, Any]:
        return await self._call(Status(self._next_id()), idempotent=True, timeout=timeout)

    async def reset(
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
        req = self._reset_request(seed, index, scene, dataset, masks, env, svg)
        return target_from_wire(await self._call(req, idempotent=True))

    async def step(
        self,
        script: str,
        target: TargetLike,
        seed: int = 0,
        preset: str | None = None,
        masks: bool = False,
        render: bool = True,
    ) -> StepResult:
        (req,) = self._step_requests([script], target, [seed], preset, masks, render)
        return StepResult.from_wire(await self._call(req, idempotent=False))

    async def step_many(
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
        """Concurrent steps over the one socket, at most ``window`` in flight; results in
        the order of scripts."""
        reqs = self._step_requests(scripts, targets, seeds, preset, masks, render)
        slots = asyncio.Semaphore(window)

        async def one(req: Step) -> dict[str, Any]:
            async with slots:
                return await self._call(req, idempotent=False)

        replies = await asyncio.gather(*map(one, reqs), return_exceptions=return_exceptions)
        out: list[StepResult | ProtocolError] = []
        for r in replies:
            if isinstance(r, ProtocolError):
                out.append(r)
            elif isinstance(r, BaseException):  # e.g. ClientTimeout: raise it, as Client does
                raise r
            else:
                out.append(StepResult.from_wire(r))
        return out

    async def step_batch(
        self,
        scripts: Sequence[str],
        targets: TargetLike | Sequence[TargetLike],
        seeds: Sequence[int] | None = None,
        preset: str | None = None,
        masks: bool = False,
        render: bool = True,
    ) -> list[StepResult | ProtocolError]:
        req = self._batch_request(scripts, targets, seeds, preset, masks, render)
        return self._batch_results(await self._call(req, idempotent=False))

    async def render(self, scene: Scene, masks: bool = True) -> RenderResult:
        req = self._render_request(scene, masks)
        return RenderResult.from_wire(await self._call(req, idempotent=True))

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for fut in self._waiting.values():
            fut.cancel()
        self._waiting.clear()
        self._sock.close(linger=0)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
