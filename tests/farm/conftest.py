"""A module-wide farm of two real Workbench workers at 32 px, with short deadlines."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from derender.farm.local import LocalFarm
from derender.farm.worker import POISON_ENV

POISON = "__derender_test_poison__"

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


@pytest.fixture(scope="module")
def farm() -> Iterator[LocalFarm]:
    os.environ[POISON_ENV] = POISON  # test-only hook, inherited by the workers
    try:
        f = LocalFarm(workers=2, engine="workbench", size=32, **FARM_OPTIONS)
        with f:
            yield f
    finally:
        os.environ.pop(POISON_ENV, None)


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
def poison() -> str:
    """A marker that makes a farm worker `os._exit` on any script containing it."""
    return POISON
