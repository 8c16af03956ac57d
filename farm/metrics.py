"""Farm metrics: request rate, latency percentiles, restarts; the status body and log line.

Only what ``derender farm status`` and the periodic log line show. Latencies are kept in a
bounded window (the last ``window`` requests) so a farm that runs for days uses constant
memory; the rate counts replies in the last ``rate_window_s`` seconds.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any

import numpy as np


class Metrics:
    """Counters the broker updates as it answers; ``snapshot`` for status and the log."""

    def __init__(self, window: int = 2000, rate_window_s: float = 10.0) -> None:
        self.started = time.monotonic()
        self.rate_window_s = rate_window_s
        self._latency: deque[float] = deque(maxlen=window)
        self._answered: deque[float] = deque()
        self.replies: Counter[str] = Counter()  # by request type
        self.errors: Counter[str] = Counter()  # by error code
        self.outcomes: Counter[str] = Counter()  # step outcomes
        self.jobs = 0
        self.retries = 0
        self.rejected = 0  # overloaded
        self.dropped = 0  # replies to clients that had gone

    def answered(self, kind: str, latency_s: float, error: str | None = None) -> None:
        now = time.monotonic()
        self.replies[kind] += 1
        if error is not None:
            self.errors[error] += 1
        if kind in ("step", "step_batch", "reset", "render"):
            self._latency.append(latency_s)
        self._answered.append(now)

    def rate(self) -> float:
        """Replies per second over the last ``rate_window_s`` (or since start)."""
        now = time.monotonic()
        while self._answered and self._answered[0] < now - self.rate_window_s:
            self._answered.popleft()
        span = min(self.rate_window_s, max(now - self.started, 1e-3))
        return len(self._answered) / span

    def percentiles(self) -> dict[str, float | None]:
        if not self._latency:
            return {"p50": None, "p99": None}
        arr = np.fromiter(self._latency, float)
        return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99))}

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_s": time.monotonic() - self.started,
            "requests_per_s": self.rate(),
            "latency_s": self.percentiles(),
            "replies": dict(self.replies),
            "errors": dict(self.errors),
            "outcomes": dict(self.outcomes),
            "jobs": self.jobs,
            "retries": self.retries,
            "rejected": self.rejected,
            "dropped": self.dropped,
        }


def ms(seconds: float | None) -> str:
    """A latency for people: ``12.3 ms``, or ``-`` when there is none yet."""
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def log_line(status: dict[str, Any]) -> str:
    """One line for the periodic metrics log, from a ``status`` body."""
    m = status["metrics"]
    states = Counter(w["state"] for w in status["workers"])
    lat = m["latency_s"]
    return (
        f"workers {dict(states)} queue {status['queue']} inflight {status['inflight']} "
        f"rate {m['requests_per_s']:.1f}/s p50 {ms(lat['p50'])} p99 {ms(lat['p99'])} "
        f"jobs {m['jobs']} retries {m['retries']} restarts {status['restarts']} "
        f"rejected {m['rejected']}"
    )
