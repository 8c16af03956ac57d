"""A live `derender serve` (headless Blender, Workbench, 64 px), one per test module."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, spawn_serve):
    tmp = tmp_path_factory.mktemp("serve")
    log = tmp / "serve.log"
    proc, endpoints = spawn_serve(
        [
            "--engine",
            "workbench",
            "--size",
            "64",
            "--deadline",
            "1",
            "--preset",
            "scene",
            "--address",
            "tcp://127.0.0.1:*",
            "--address",
            f"ipc://{tmp}/derender.ipc",
        ],
        log=log,
    )
    yield SimpleNamespace(proc=proc, tcp=endpoints[0], ipc=endpoints[1], log=log)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log.read_text()
