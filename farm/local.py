"""LocalFarm: a whole farm (broker, supervisor, N headless Blender workers) as subprocesses.

For the Gymnasium env, the trainer adapters, benchmarks and tests::

    with LocalFarm(workers=2, engine="workbench", size=64) as farm:
        client = Client(farm.address)

The farm process runs ``python -m derender.farm.run`` in its own session; its workers
run in theirs and die with it (``PR_SET_PDEATHSIG``). ``stop`` asks politely (SIGTERM:
the farm kills its workers and deletes their temp dirs), then kills the farm's process
group, then deletes the run dir. A garbage-collected or forgotten LocalFarm is stopped
at interpreter exit, and a farm whose starting process died (even by SIGKILL) stops
itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import FarmConfig, endpoints
from .os_sandbox import import_roots


def _cleanup(proc: subprocess.Popen, run_dir: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in the farm's group
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    # Workers die with the farm (PR_SET_PDEATHSIG) but asynchronously: one may still be
    # writing into the run dir while it is deleted, so delete until it stays gone.
    for _ in range(50):
        shutil.rmtree(run_dir, ignore_errors=True)
        if not os.path.exists(run_dir):
            return
        time.sleep(0.1)


class LocalFarm:
    """Supervisor + broker + N headless Blender workers as real subprocesses."""

    def __init__(
        self,
        workers: int = 2,
        engine: str | None = None,
        size: int = 128,
        bind: str | Sequence[str] | None = None,
        **options: Any,
    ) -> None:
        """``options`` are further :class:`FarmConfig` fields (deadlines, limits, ...)."""
        if engine is not None:
            options["engine"] = engine
        self.config = FarmConfig(workers=workers, size=size, bind=endpoints(bind), **options)
        self.address = ""
        self._control = ""
        self.run_dir: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None

    def start(self, timeout: float = 300.0, log_level: str = "WARNING") -> LocalFarm:
        """Start the farm; return when it answers and all its workers are ready."""
        from .status import query_status

        if self._proc is not None:
            raise RuntimeError(f"this LocalFarm is already running at {self.address}")
        run_dir = Path(tempfile.mkdtemp(prefix="derender-farm-"))
        address_file = run_dir / "address"
        # A control endpoint of its own, for status queries: the client endpoints may
        # require CURVE keys this process does not have.
        self._control = f"ipc://{run_dir / 'control.sock'}"
        binds = (*(self.config.bind or ("tcp://127.0.0.1:*",)), self._control)
        config = replace(self.config, bind=binds)
        cmd = [
            sys.executable,
            "-m",
            "derender.farm.run",
            "--config",
            json.dumps(config.to_dict()),
            "--run-dir",
            str(run_dir),
            "--address-file",
            str(address_file),
            "--log-level",
            log_level,
            "--owner-pid",
            str(os.getpid()),
        ]
        # the same derender this process runs (inside Blender: the add-on's own files)
        roots = [str(r) for r in import_roots()]
        env = dict(os.environ)
        if roots:
            env["PYTHONPATH"] = os.pathsep.join([*roots, env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            )
        # the farm logs to stderr; stdout would only carry library chatter (torch hub)
        self._proc = subprocess.Popen(
            cmd,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        self.run_dir = run_dir
        self._finalizer = weakref.finalize(self, _cleanup, self._proc, str(run_dir))
        deadline = time.monotonic() + timeout
        try:
            while not address_file.exists():
                self._check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the farm did not bind within {timeout:g} s")
                time.sleep(0.05)
            self.address = address_file.read_text()
            expected = self.config.workers + self.config.target_workers
            while True:
                self._check_alive()
                status = query_status(self._control, max(0.1, deadline - time.monotonic()))
                ready = sum(1 for w in status["workers"] if w["state"] != "starting")
                if ready >= expected:
                    return self
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"only {ready} of {expected} workers were ready after {timeout:g} s"
                    )
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def _check_alive(self) -> None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError(f"the farm process exited with status {self._proc.returncode}")

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """The farm's ``status`` reply (workers, queue, rates, latencies, restarts)."""
        from .status import query_status

        return query_status(self._control, timeout)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def stop(self) -> None:
        """Stop the farm and its workers, delete every temp dir; idempotent."""
        if self._finalizer is not None:
            self._finalizer()
        self._proc = None
        self._finalizer = None

    def __enter__(self) -> LocalFarm:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
