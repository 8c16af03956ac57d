"""A module-wide farm of two real Workbench workers at 32 px, with short deadlines, and
helpers the farm tests share (polling, a crashing script, a process memory search)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from derender.farm.local import LocalFarm

# Allowed by the language sandbox, but hashing a tuple nested 300,000 deep recurses in C
# until CPython overflows its stack: a real crash that kills every worker it lands on.
CRASHER = "x = ()\nfor i in range(300000):\n    x = (x,)\nhash(x)\n"

# Short deadlines so failure paths finish fast; the sandbox's own deadline is long on
# purpose so that `while True: pass` reaches the farm's hard deadline.
FARM_OPTIONS: dict[str, Any] = {
    "sandbox_deadline": 30.0,
    "hard_deadline": 4.0,
    "heartbeat_interval": 0.2,
    "heartbeat_timeout": 3.0,
    "restart_backoff": 0.2,
    "max_pending": 64,
    "metrics_interval": 0,
    "options": {"max_ticks": 10**9},
}


@pytest.fixture(scope="session")
def farm_options() -> dict[str, Any]:
    """The short deadlines of the module-wide farm, for tests that start farms of their own."""
    return dict(FARM_OPTIONS)


@pytest.fixture(scope="module")
def farm() -> Iterator[LocalFarm]:
    with LocalFarm(workers=2, engine="workbench", size=32, **FARM_OPTIONS) as f:
        yield f


def _wait_for(predicate: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(predicate, timeout, what)``: poll until truthy, fail after ``timeout``."""
    return _wait_for


@pytest.fixture
def all_idle(farm: LocalFarm) -> Callable[[], list[dict[str, Any]]]:
    """Wait until both step workers and the target worker of ``farm`` are idle; returns
    the step workers' status entries."""

    def check() -> list[dict[str, Any]] | None:
        idle = [w for w in farm.status()["workers"] if w["state"] == "idle"]
        steps = [w for w in idle if w["role"] == "step"]
        return steps if len(steps) >= 2 and len(idle) >= 3 else None

    return lambda: _wait_for(check, 90.0, "two idle step workers and a target worker")


@pytest.fixture
def crasher() -> str:
    """A script that segfaults the worker running it (see CRASHER)."""
    return CRASHER


def _regions(pid: int) -> Iterator[tuple[int, int]]:
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            span, perms = line.split()[:2]
            if perms.startswith("r"):
                start, end = (int(x, 16) for x in span.split("-"))
                yield start, end


def _memory_contains(pid: int, needles: list[bytes]) -> set[bytes]:
    found: set[bytes] = set()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for start, end in _regions(pid):
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, OverflowError, ValueError):  # [vvar] and friends
                continue
            found |= {n for n in needles if n in chunk}
    return found


@pytest.fixture
def memory_contains() -> Callable[[int, list[bytes]], set[bytes]]:
    """``memory_contains(pid, needles)``: the needles found anywhere in the readable memory
    of process ``pid`` (``/proc/PID/mem``, every readable mapping; needs root)."""
    return _memory_contains
