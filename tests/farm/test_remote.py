"""A worker on "another host" joins a farm by address over CURVE; a keyless one cannot."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from derender import Client
from derender.farm.local import LocalFarm
from derender.protocol.keys import create_keypair
from derender.scenes import dsl_program


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(farm: LocalFarm, identity: str, *extra: str) -> subprocess.Popen:
    assert farm.config.remote_backend is not None
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "derender.addon.worker",
            "--connect",
            farm.config.remote_backend,
            "--identity",
            identity,
            "--config",
            # a remote worker reaches the farm over the network, which the OS sandbox
            # does not give: its operator turns the sandbox off for it, explicitly
            json.dumps({**farm.config.to_dict(), "os_sandbox": False}),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_remote_worker_joins_with_keys_and_a_stranger_does_not(tmp_path):
    server_public, server_secret = create_keypair(tmp_path / "server", "farm")
    clients = tmp_path / "clients"
    _, worker_secret = create_keypair(clients, "worker")  # its .key is what the farm trusts
    _, stranger_secret = create_keypair(tmp_path / "stranger", "stranger")
    remote = f"tcp://127.0.0.1:{_free_port()}"
    with LocalFarm(
        workers=1,
        engine="workbench",
        size=32,
        metrics_interval=0,
        remote_backend=remote,
        curve_secret=str(server_secret),
        curve_clients=str(clients),
    ) as farm:
        procs = [
            _worker(
                farm, "remote-1", "--server-key", str(server_public), "--keys", str(worker_secret)
            ),
            _worker(
                farm,
                "stranger-1",
                "--server-key",
                str(server_public),
                "--keys",
                str(stranger_secret),
            ),
        ]
        try:
            deadline = time.monotonic() + 120
            ids: dict[str, dict] = {}
            while time.monotonic() < deadline:
                ids = {w["id"]: w for w in farm.status()["workers"] if w["state"] == "idle"}
                if "remote-1" in ids:
                    break
                time.sleep(0.2)
            assert ids["remote-1"]["slot"] is None  # adopted, not spawned
            with Client(farm.address, timeout=120) as client:
                target = client.reset(seed=2, index=0)
                results = client.step_many([dsl_program(target.scene)] * 20, target, window=8)
            assert [r.outcome for r in results] == ["ok"] * 20
            workers = {w["id"]: w for w in farm.status()["workers"]}
            assert workers["remote-1"]["jobs"] > 0  # it really took work
            local = {k for k in workers if k.startswith(("s0-", "t1-"))}
            assert len(local) == 2 and set(workers) == {"remote-1", *local}
        finally:
            for p in procs:
                p.kill()
                p.wait()
