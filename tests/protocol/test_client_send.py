"""A client whose messages cannot be queued (nobody listens and its queue is full)
gives up with ClientTimeout after its timeout, instead of blocking in ZeroMQ's send."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from derender.protocol.aio import AsyncClient
from derender.protocol.client import Client, ClientTimeout


def _nobody_listens() -> str:
    with socket.socket() as s:  # a port the OS just handed out, closed again
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def test_a_client_that_cannot_queue_a_step_raises_instead_of_blocking() -> None:
    # ZeroMQ queues 1000 messages (SNDHWM) for a peer that is not there yet; the next
    # send would block until one connects
    with Client(_nobody_listens(), timeout=0.5, retries=0) as client:
        t0 = time.monotonic()
        with pytest.raises(ClientTimeout, match="could not send"):
            client.step_many(["x = 1"] * 1500, "target", window=2000)
        assert time.monotonic() - t0 < 30


def test_an_async_client_that_cannot_send_raises_instead_of_waiting() -> None:
    async def main() -> None:
        client = AsyncClient(_nobody_listens(), timeout=0.5, retries=0)
        try:
            # fill the queue past the high-water mark, then ask: both within the timeout
            calls = [client.status() for _ in range(1100)]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(o, ClientTimeout) for o in outcomes)
        finally:
            await client.close()

    t0 = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - t0 < 30
