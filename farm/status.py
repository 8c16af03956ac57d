"""Asking a farm for its ``status`` (the farm-only request type) and printing it.

The generic :class:`derender.protocol.client.Client` only sends the protocol's own request
types; ``status`` is farm-specific, so this is a minimal one-shot DEALER request.
"""

from __future__ import annotations

import os
from typing import Any

from ..protocol import codec
from ..protocol.errors import ClientTimeout, ServerError
from ..protocol.messages import PROTOCOL_VERSION
from .metrics import ms


def query_status(address: str, timeout: float = 5.0) -> dict[str, Any]:
    """The farm's status body; ClientTimeout if it does not answer within ``timeout``."""
    import zmq

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    rid = f"status.{os.getpid()}.{os.urandom(4).hex()}"
    try:
        sock.send_multipart(
            [b"", *codec.encode({"v": PROTOCOL_VERSION, "id": rid, "type": "status"})]
        )
        if not sock.poll(int(timeout * 1000)):
            raise ClientTimeout(f"no status reply from {address} within {timeout:g} s")
        frames = sock.recv_multipart()
    finally:
        sock.close(0)
    reply = codec.decode(frames[1:] if frames and frames[0] == b"" else frames)
    if not reply.get("ok"):
        err = reply.get("error") or {}
        raise ServerError(str(err.get("message", "")), str(err.get("code", "internal")), rid)
    return reply


def format_status(status: dict[str, Any]) -> str:
    """Human-readable status: one summary block, then one line per worker."""
    m = status["metrics"]
    lat = m["latency_s"]
    lines = [
        f"engine {status['engine']}  frame {status['frame_hash']}  "
        f"OS-sandboxed: {status['os_sandboxed']}  network isolated: {status['network_isolated']}",
        f"queue {status['queue']}  in flight {status['inflight']}  pending requests "
        f"{status['pending']}  cached targets {status['targets']}",
        f"requests/s {m['requests_per_s']:.2f}  p50 {ms(lat['p50'])}  p99 {ms(lat['p99'])}  "
        f"jobs {m['jobs']}  retries {m['retries']}  restarts {status['restarts']}  "
        f"overloaded {m['rejected']}",
        f"outcomes {m['outcomes']}  errors {m['errors']}",
        "workers:",
    ]
    for w in status["workers"]:
        lines.append(
            f"  {w['id']:>16}  {w['role']:<6}  {w['state']:<8}  pid {w['pid']:<7}"
            f"  jobs {w['jobs']:<6}"
            f"  rss {w['rss_mb']} MiB  age {w['age_s']} s"
        )
    return "\n".join(lines)
