"""``derender farm`` in the foreground, ``derender farm status``, request deadlines."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from derender import Client
from derender.protocol.errors import ProtocolError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "derender.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )


def test_derender_farm_serves_reports_status_and_stops_on_sigint(tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"
    config = tmp_path / "farm.toml"
    config.write_text(
        "size = 32\nmetrics_interval = 0.5\nrequest_timeout = 1.5\n"
        "hard_deadline = 4.0\nsandbox_deadline = 30.0\n"
        "[options]\nmax_ticks = 1000000000\n"
    )
    log = tmp_path / "farm.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "derender.cli",
                "farm",
                "--workers",
                "1",
                "--bind",
                address,
                "--config",
                str(config),
            ],
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            out = _cli("farm", "status", "--address", address, "--timeout", "1")
            if out.returncode == 0 and " idle " in out.stdout and " starting " not in out.stdout:
                break
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, out.stderr
        # one step worker and one target worker
        assert "requests/s" in out.stdout and out.stdout.count(" pid ") == 2
        assert " step " in out.stdout and " target " in out.stdout
        assert "OS-sandboxed: True" in out.stdout
        with Client(address, timeout=60) as client:
            target = client.reset(seed=1, index=0)
            t0 = time.monotonic()
            with pytest.raises(ProtocolError) as err_info:
                client.step("while True:\n    pass\n", target)  # outlives request_timeout
            assert err_info.value.code == "timeout"
            assert 1.0 <= time.monotonic() - t0 < 4.0
            # the worker is killed at the hard deadline and replaced; service goes on
            from derender.farm.status import query_status

            def step_worker() -> dict:
                return next(w for w in query_status(address)["workers"] if w["role"] == "step")

            first = step_worker()["id"]
            while True:
                worker = step_worker()
                if worker["id"] != first and worker["state"] == "idle":
                    break
                assert time.monotonic() - t0 < 90, worker
                time.sleep(0.2)
            assert client.step("pass\n", target, preset="scene").outcome == "ok"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "clients connect to " + address in text
    assert "rate" in text and "p50" in text  # the periodic metrics line


def test_farm_status_without_a_farm_fails_cleanly():
    out = _cli("farm", "status", "--address", f"tcp://127.0.0.1:{_free_port()}", "--timeout", "0.3")
    assert out.returncode == 1 and "no reply from" in out.stderr


def test_a_farm_whose_owner_is_sigkilled_stops_and_cleans_up():
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from derender.farm.local import LocalFarm\n"
            "import time\nf = LocalFarm(workers=1, size=32, metrics_interval=0).start()\n"
            "print('PIDS', f.pid, f.run_dir, *[w['pid'] for w in f.status()['workers']],"
            " flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = next(x for x in owner.stdout if x.startswith("PIDS "))
        farm_pid, run_dir, *worker_pids = line.split()[1:]
    finally:
        owner.kill()  # SIGKILL: no finalizer, no atexit in the owner
        owner.wait()
    deadline = time.monotonic() + 30
    pids = [int(farm_pid), *map(int, worker_pids)]
    while time.monotonic() < deadline and (any(_alive(p) for p in pids) or os.path.exists(run_dir)):
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids) and not os.path.exists(run_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of a dead owner is reaped by init soon; count it as gone
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"
