"""Asking a farm for its ``status`` (the farm-only request type) and printing it."""

from __future__ import annotations

from typing import Any

from .metrics import ms


def query_status(address: str, timeout: float = 5.0) -> dict[str, Any]:
    """The farm's status body; ClientTimeout if it does not answer within ``timeout``."""
    from ..protocol.client import Client

    with Client(address, timeout=timeout, retries=0) as client:
        return client.status()


def _gpu(gpu: int | None) -> str:
    return "-" if gpu is None else str(gpu)


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
            f"  node {(w.get('node') or 'farm')[:12]:<12}  gpu {_gpu(w.get('gpu')):<4}"
            f"  jobs {w['jobs']:<6}"
            f"  rss {w['rss_mb']} MiB  age {w['age_s']} s"
        )
    return "\n".join(lines)
