"""Shared fixtures. Blender tests use the pip ``bpy`` module (one Blender per process)."""

from __future__ import annotations

import importlib.util

import pytest

# tests/trainers runs in its own environment (.venv-trainers: the trainer packages, derender
# client-side, no bpy), as `make test` does: .venv-trainers/bin/python -m pytest
# tests/trainers. An environment without the trainer packages does not collect it.
collect_ignore = [] if importlib.util.find_spec("trl") else ["trainers"]


@pytest.fixture
def bpy_empty():
    """bpy reset to an empty factory scene; skips nothing: bpy is a dev dependency."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy


def _spawn_serve(args: list[str], log, timeout: float = 180.0):
    """Start ``derender serve ARGS`` in a child process; return it and its endpoints.

    The child's stdout and stderr go to the file ``log`` (a pipe nobody drains could fill
    and block the server). Waits for the ``listening on`` line; raises RuntimeError with
    the log if the child exits or stays silent."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "derender.cli", "serve", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = Path(log).read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("derender serve: listening on "):
                return proc, line.split(" on ", 1)[1].split(" (")[0].split()
        if proc.poll() is not None:
            raise RuntimeError(f"derender serve exited with {proc.returncode}:\n{text}")
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"derender serve did not start within {timeout} s:\n{Path(log).read_text()}")


@pytest.fixture(scope="session")
def spawn_serve():
    """``spawn_serve(args, log) -> (process, endpoints)``: a real ``derender serve``."""
    return _spawn_serve
