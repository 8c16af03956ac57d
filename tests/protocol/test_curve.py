"""CURVE: a server bound to a non-loopback address accepts only the clients whose public
keys are in its directory. The server binds 0.0.0.0 but every byte is sent to 127.0.0.1.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import pytest
from derender import Client
from derender.protocol.errors import ClientTimeout
from derender.protocol.keys import create_keypair, load_keys


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    out = subprocess.run(
        [sys.executable, "-m", "derender.cli", "keys", "--out", str(root), "--name", "server"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    alice_public, _ = create_keypair(root / "alice", "alice")
    create_keypair(root / "mallory", "mallory")
    (root / "clients").mkdir()
    shutil.copy(alice_public, root / "clients")
    return root


@pytest.fixture(scope="module")
def secure_server(keys, spawn_serve):
    proc, endpoints = spawn_serve(
        [
            "--engine",
            "workbench",
            "--size",
            "64",
            "--address",
            "tcp://0.0.0.0:*",
            "--preset",
            "scene",
            "--curve-secret",
            str(keys / "server.key_secret"),
            "--curve-clients",
            str(keys / "clients"),
        ],
        log=keys / "serve.log",
    )
    port = endpoints[0].rsplit(":", 1)[1]
    assert endpoints[0].startswith("tcp://0.0.0.0:")
    yield f"tcp://127.0.0.1:{port}"  # only ever talk to loopback
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, (keys / "serve.log").read_text()


def test_keys_command_writes_a_pair(keys):
    pair = load_keys(keys / "server.key_secret")
    assert len(pair.public) == 40 and pair.secret is not None and len(pair.secret) == 40
    assert load_keys(keys / "server.key").secret is None
    assert (keys / "server.key_secret").stat().st_mode & 0o077 == 0
    again = subprocess.run(
        [sys.executable, "-m", "derender.cli", "keys", "--out", str(keys), "--name", "server"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "not overwriting" in again.stderr


def test_authorised_client_is_served(secure_server, keys):
    with Client(
        secure_server,
        timeout=30,
        retries=0,
        server_key=keys / "server.key",
        client_keys=keys / "alice" / "alice.key_secret",
    ) as c:
        assert c.ping() < 5
        assert c.info().engine == "workbench"


@pytest.mark.parametrize("who", ["mallory", "ephemeral", "plain"])
def test_unauthorised_clients_get_nothing(secure_server, keys, who):
    kw = {}
    if who == "mallory":  # a valid key pair the server does not know
        kw = {
            "server_key": keys / "server.key",
            "client_keys": keys / "mallory" / "mallory.key_secret",
        }
    elif who == "ephemeral":
        kw = {"server_key": keys / "server.key"}
    retries = 1 if who == "mallory" else 0
    with Client(secure_server, timeout=1.0, retries=retries, **kw) as c:
        t0 = time.monotonic()
        with pytest.raises(ClientTimeout):
            c.ping()
    assert time.monotonic() - t0 >= 1.0 * (1 + retries)  # each retry waited its full timeout
