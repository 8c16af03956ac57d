"""A script in a C loop, a script that crashes CPython, a violation: in every serving mode.

The farm itself is tested in test_farm.py; here the same real-process paths run through
``derender serve`` (a farm of one), ``derender exec`` (a one-shot farm) and the Blender
GUI's socket server (a local farm the panel watches). In each, a step stuck in one C call
(no sandbox tick can run) is cut at the hard deadline and ends ``timeout``; a script that
segfaults its worker ends ``poisoned`` after its retry; a violation recycles the worker;
and the serving process keeps answering.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from derender import Client
from derender.farm.status import query_status
from derender.protocol.results import StepResult
from derender.scenes import FrameSpec

SPIN_IN_C = "l = [0] * 100000\nany(map(l.count, [1] * 100000))\n"  # one C call, no tick
CRASH = "x = ()\nfor i in range(300000):\n    x = (x,)\nhash(x)\n"  # C recursion: SIGSEGV
VIOLATION = "import os\n"
BENIGN = "add_object('cube', 'small', 'rubber', 'red', 0.0, 0.0)\n"
HARD_DEADLINE = 4.0


def _check_a_serving_farm(address: str, status: Callable[[], dict]) -> None:
    with Client(address, timeout=180) as client:
        target = client.reset(seed=3, index=0)
        t0 = time.monotonic()
        stuck = client.step(SPIN_IN_C, target)
        assert stuck.outcome == "timeout" and "hard deadline" in stuck.message
        assert HARD_DEADLINE <= time.monotonic() - t0 < 60
        crashed = client.step(CRASH, target)
        assert crashed.outcome == "poisoned", crashed.message
        restarts = status()["restarts"]
        assert client.step(VIOLATION, target).outcome == "sandbox_violation"
        assert client.step(BENIGN, target).outcome == "ok"  # it still answers
        assert status()["restarts"] == restarts + 1  # recycled


def test_derender_serve(tmp_path: Path, spawn_serve) -> None:
    args = ["--engine", "workbench", "--size", "32", "--hard-deadline", str(HARD_DEADLINE)]
    proc, endpoints = spawn_serve(
        [*args, "--address", "tcp://127.0.0.1:*"], log=tmp_path / "serve.log"
    )
    try:
        _check_a_serving_farm(endpoints[0], lambda: query_status(endpoints[0]))
        assert proc.poll() is None
    finally:
        proc.terminate()
        assert proc.wait(60) == 0, (tmp_path / "serve.log").read_text()[-3000:]


@pytest.mark.parametrize(
    ("script", "outcome"),
    [(SPIN_IN_C, "timeout"), (CRASH, "poisoned"), (VIOLATION, "sandbox_violation")],
)
def test_derender_exec(tmp_path: Path, script: str, outcome: str) -> None:
    (tmp_path / "s.py").write_text(script)
    cmd = [sys.executable, "-m", "derender.cli", "exec", "s.py", "--out", "o.png", "--json",
           "--size", "32", "--hard-deadline", str(HARD_DEADLINE)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["outcome"] == outcome, report["message"]
    assert report["out"] is None and not (tmp_path / "o.png").exists()


def test_the_gui_socket_server() -> None:
    from derender.addon.gui_server import GuiServer

    spec = FrameSpec(width=32, height=32, engine="workbench", samples=8)
    server = GuiServer(
        spec,
        "tcp://127.0.0.1:*",
        "scene",
        None,
        blender=None,
        os_sandbox=True,
        hard_deadline=HARD_DEADLINE,
    )
    try:
        assert server.os_sandboxed
        _check_a_serving_farm(server.endpoints[0], server.farm.status)
        shown: list[str] = []
        deadline = time.monotonic() + 30
        while len(shown) < 4 and time.monotonic() < deadline:  # the monitor lags a little
            shown += [a.outcome for a in server.poll() if isinstance(a, StepResult)]
            time.sleep(0.05)
        assert shown == ["timeout", "poisoned", "sandbox_violation", "ok"]
    finally:
        server.close()
