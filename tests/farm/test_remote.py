"""Workers on "another host" join a farm through a worker host (``derender farm join``).

Real processes and real CURVE on loopback: a farm with a remote backend and keys, and
worker hosts that hold the keys, run OS-sandboxed workers and relay them to the farm.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zmq
from derender import Client
from derender.farm.host_link import FarmLink
from derender.farm.local import LocalFarm
from derender.farm.os_sandbox import sandboxed_pid
from derender.protocol import codec
from derender.protocol.keys import create_keypair, load_keys
from derender.scenes import dsl_program
from zmq.utils import z85

# About half a second of pure Python per step on a quiet machine: long enough that a
# worker is caught busy, short enough for the farm's hard deadline under load.
SLOW = "for i in range(100):\n    for j in range(10000):\n        pass\n"
LONG = "for i in range(3000):\n    for j in range(10000):\n        pass\n"  # ~15 s
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="reads other processes' /proc as root")


@dataclass(frozen=True)
class Keys:
    farm_public: Path
    farm_secret: Path
    clients: Path  # the farm's curve_clients: the host's public key only
    host_secret: Path
    stranger_secret: Path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    root = tmp_path_factory.mktemp("keys")
    farm_public, farm_secret = create_keypair(root / "farm", "farm")
    host_public, host_secret = create_keypair(root / "host", "host")
    clients = root / "clients"
    clients.mkdir()
    (clients / "host.key").write_bytes(host_public.read_bytes())
    _, stranger_secret = create_keypair(root / "stranger", "stranger")
    return Keys(farm_public, farm_secret, clients, host_secret, stranger_secret)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_farm(keys: Keys, options: dict[str, Any], port: int) -> LocalFarm:
    return LocalFarm(
        workers=1,
        engine="workbench",
        size=32,
        remote_backend=f"tcp://127.0.0.1:{port}",
        curve_secret=str(keys.farm_secret),
        curve_clients=str(keys.clients),
        **options,
    ).start()


@pytest.fixture(scope="module")
def options(farm_options: dict[str, Any]) -> dict[str, Any]:
    # a relayed heartbeat takes one more hop; slow steps need room under load
    return {**farm_options, "hard_deadline": 30.0, "heartbeat_timeout": 5.0}


@pytest.fixture(scope="module")
def remote_farm(keys: Keys, options: dict[str, Any]) -> Iterator[LocalFarm]:
    farm = _start_farm(keys, options, _free_port())
    try:
        yield farm
    finally:
        farm.stop()


def _toml(values: dict[str, Any]) -> str:
    """A farm.toml of flat values and one-level tables (JSON scalars are TOML scalars)."""
    flat = [f"{k} = {json.dumps(v)}" for k, v in values.items() if not isinstance(v, dict)]
    tables = [
        f"[{k}]\n" + "".join(f"{key} = {json.dumps(x)}\n" for key, x in v.items())
        for k, v in values.items()
        if isinstance(v, dict)
    ]
    return "\n".join(flat) + "\n" + "".join(tables)


@dataclass
class Host:
    """A ``derender farm join`` process and where its log goes."""

    proc: subprocess.Popen
    name: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def workers(self) -> dict[str, int]:
        """Farm identity -> host pid of each of its workers' own process (inside bwrap)."""
        found = {}
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                pid = sandboxed_pid(int(child))
                if pid is None:
                    continue
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if b"--identity" in argv:
                    identity = argv[argv.index(b"--identity") + 1].decode()
                    found[f"{self.name}.{identity}"] = pid
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()


def _join(
    farm: LocalFarm, secret: Path, name: str, workers: int, tmp: Path, keys: Keys, *extra: str
) -> Host:
    # the farm's own config file, as an operator copies it (the host ignores its endpoints)
    config = tmp / f"{name}.toml"
    config.write_text(_toml({k: v for k, v in farm.config.to_dict().items() if v is not None}))
    log = tmp / f"{name}.log"
    assert farm.config.remote_backend is not None
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "derender.cli",
                "farm",
                "join",
                "--connect",
                farm.config.remote_backend,
                "--server-key",
                str(keys.farm_public),
                "--keys",
                str(secret),
                "--workers",
                str(workers),
                "--name",
                name,
                "--config",
                str(config),
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
        )
    return Host(proc, name, log)


def _hosted(farm: LocalFarm, name: str, state: str | None = None) -> dict[str, dict[str, Any]]:
    """The farm's status entries of ``name``'s workers (in ``state``, if given)."""
    return {
        w["id"]: w
        for w in farm.status()["workers"]
        if w["id"].startswith(f"{name}.") and state in (None, w["state"])
    }


def _wait_hosted(farm: LocalFarm, host: Host, count: int, wait_for: Any) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        assert host.proc.poll() is None, host.log_text()
        idle = _hosted(farm, host.name, "idle")
        return idle if len(idle) == count else None

    return wait_for(check, 300, f"{count} idle workers of host {host.name}")


@pytest.fixture(scope="module")
def host(remote_farm: LocalFarm, keys: Keys, tmp_path_factory: pytest.TempPathFactory):
    alpha = _join(remote_farm, keys.host_secret, "alpha", 2, tmp_path_factory.mktemp("h"), keys)
    try:
        yield alpha
    finally:
        alpha.stop()


def test_hosted_workers_join_and_share_a_batch_with_local_ones(remote_farm, host, wait_for):
    hosted = _wait_hosted(remote_farm, host, 2, wait_for)
    assert all(w["slot"] is None and w["role"] == "step" for w in hosted.values())
    # the farm's ids and pids are the host's workers' (its ready names the host pid)
    assert {i: w["pid"] for i, w in hosted.items()} == host.workers()
    with Client(remote_farm.address, timeout=300) as client:
        target = client.reset(seed=2, index=0)
        results = client.step_many([SLOW, dsl_program(target.scene)] * 6, target, window=12)
    assert [r.outcome for r in results] == ["ok"] * 12
    assert max(r.reward for r in results) > 0.9  # rewards are scored for relayed results
    workers = {w["id"]: w for w in remote_farm.status()["workers"]}
    assert all(workers[i]["jobs"] > 0 for i in hosted)
    local = [w for w in workers.values() if w["slot"] is not None and w["role"] == "step"]
    assert len(local) == 1 and local[0]["jobs"] > 0


@ROOT_ONLY
def test_hosted_workers_are_sandboxed_and_hold_no_key(
    remote_farm, host, keys, wait_for, memory_contains
):
    _wait_hosted(remote_farm, host, 2, wait_for)
    secret = load_keys(keys.host_secret).secret
    assert secret is not None
    needles = [secret, z85.decode(secret)]  # the key as the file spells it, and raw
    key_dev = os.stat(keys.host_secret).st_dev
    for pid in host.workers().values():
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        assert status["Uid"].split() == ["65534"] * 4
        assert int(status["CapEff"], 16) == 0 and status["NoNewPrivs"].strip() == "1"
        interfaces = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
        assert [line.split(":")[0].strip() for line in interfaces] == ["lo"]
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert not any(n in environ for n in needles) and b"key" not in environ.lower()
        # Files it can read: a path is visible only through a mount of its device whose
        # root is above it. No mount of the key's device reaches the key's directory.
        for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
            major, minor = (int(x) for x in line.split()[2].split(":"))
            mount_root = Path(line.split()[3])
            if os.makedev(major, minor) == key_dev:
                assert not keys.host_secret.is_relative_to(mount_root), line
        assert not Path(f"/proc/{pid}/root{keys.host_secret}").exists()
        for tree in ("tmp", "dev/shm"):  # its own writable files hold no key either
            for path in Path(f"/proc/{pid}/root/{tree}").rglob("*"):
                if path.is_file() and not path.is_symlink():
                    assert not any(n in path.read_bytes() for n in needles), path
        assert memory_contains(pid, needles) == set()
    # the control: the host holds the key, and the same search finds it there
    assert memory_contains(host.proc.pid, needles)


def test_an_impostor_on_the_hosts_socket_is_not_relayed(remote_farm, host, wait_for):
    _wait_hosted(remote_farm, host, 2, wait_for)
    pid = next(iter(host.workers().values()))
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    socket_address = argv[argv.index(b"--connect") + 1].decode()  # same path on the host
    ctx = zmq.Context.instance()
    impostor = ctx.socket(zmq.DEALER)
    impostor.setsockopt(zmq.IDENTITY, b"s0-99-feedface")
    impostor.setsockopt(zmq.LINGER, 0)
    impostor.connect(socket_address)
    frame_hash = remote_farm.status()["frame_hash"]
    try:
        for _ in range(10):
            ready = {"kind": "ready", "pid": 1, "frame_hash": frame_hash, "role": "step"}
            impostor.send_multipart(codec.encode(ready))
            time.sleep(0.2)
        assert "alpha.s0-99-feedface" not in _hosted(remote_farm, "alpha")
        assert len(_hosted(remote_farm, "alpha")) == 2
    finally:
        impostor.close(0)


def test_hosted_workers_the_farm_recycles_are_replaced_by_their_host(remote_farm, host, wait_for):
    before = _wait_hosted(remote_farm, host, 2, wait_for)
    states = lambda: [w["state"] for w in remote_farm.status()["workers"]]  # noqa: E731
    wait_for(lambda: states() == ["idle"] * 4, 120, "all four workers idle")
    with Client(remote_farm.address, timeout=300) as client:
        target = client.reset(seed=2, index=0)
        # one request, three jobs: one on each idle step worker, the hosted ones too
        results = client.step_batch(["import os\n"] * 3, target)
    assert [r.outcome for r in results] == ["sandbox_violation"] * 3
    after = _wait_hosted(remote_farm, host, 2, wait_for)  # the farm said exit; new ones
    assert not set(after) & set(before) and set(host.workers()) == set(after)
    assert "before giving it any work" not in host.log_text()


def test_a_hosted_worker_killed_mid_batch_loses_no_step_and_is_restarted(
    remote_farm, host, wait_for
):
    before = _wait_hosted(remote_farm, host, 2, wait_for)
    pids = host.workers()
    retries = remote_farm.status()["metrics"]["retries"]
    results: list[Any] = []

    def batch() -> None:
        with Client(remote_farm.address, timeout=300) as client:
            target = client.reset(seed=3, index=0)
            results.extend(client.step_many([SLOW] * 12, target, window=12))

    thread = threading.Thread(target=batch)
    thread.start()
    try:
        victim = wait_for(
            lambda: next(iter(_hosted(remote_farm, "alpha", "busy")), None), 120, "a busy one"
        )
        os.kill(pids[victim], signal.SIGKILL)
    finally:
        thread.join(300)
    assert [r.outcome for r in results] == ["ok"] * 12
    assert remote_farm.status()["metrics"]["retries"] > retries  # its step ran again
    after = _wait_hosted(remote_farm, host, 2, wait_for)
    assert victim not in after and len(set(after) & set(before)) == 1  # one new worker
    assert host.proc.poll() is None and set(host.workers()) == set(after)
    assert "exited" in host.log_text()


def test_a_host_with_a_strangers_keys_gets_nothing(remote_farm, keys, tmp_path, wait_for):
    # a stranger's worker that says `ready` and beats on the remote backend is not adopted
    farm_key = load_keys(keys.farm_public).public
    stranger_keys = load_keys(keys.stranger_secret)
    impostor = FarmLink(remote_farm.config.remote_backend, farm_key, stranger_keys)
    ctx = zmq.Context.instance()
    sockets = [impostor.socket(ctx, "stranger.s0-1-feedface" + hb) for hb in ("", "#hb")]
    frame_hash = remote_farm.status()["frame_hash"]
    try:
        for sock in sockets:
            sock.connect(impostor.address)
        ready = {"kind": "ready", "pid": 1, "frame_hash": frame_hash, "role": "step"}
        for i in range(10):  # refused, the socket soon has no peer to queue for
            with contextlib.suppress(zmq.Again):
                if i == 0:
                    sockets[0].send_multipart(codec.encode(ready), zmq.NOBLOCK)
                sockets[1].send_multipart(codec.encode({"kind": "hb", "rss": 0}), zmq.NOBLOCK)
            time.sleep(0.2)
        assert _hosted(remote_farm, "stranger") == {}
    finally:
        for sock in sockets:
            sock.close(0)
    # a worker host with those keys is refused, says so, and stops with its workers
    stranger = _join(remote_farm, keys.stranger_secret, "stranger", 1, tmp_path, keys)
    try:
        assert stranger.proc.wait(timeout=300) == 1
    finally:
        stranger.stop()
    public = stranger_keys.public.decode()
    assert f"refused this host's key {public}" in stranger.log_text()
    with Client(remote_farm.address, timeout=300) as client:
        target = client.reset(seed=4, index=0)
        results = client.step_many([dsl_program(target.scene)] * 6, target, window=6)
    assert [r.outcome for r in results] == ["ok"] * 6
    assert _hosted(remote_farm, "stranger") == {}


def test_a_host_with_another_frame_is_told_so(remote_farm, keys, tmp_path, wait_for):
    delta = _join(remote_farm, keys.host_secret, "delta", 1, tmp_path, keys, "--size", "48")
    try:
        wait_for(lambda: "before giving it any work" in delta.log_text(), 300, "the refusal")
        assert _hosted(remote_farm, "delta", "idle") == {}
        assert delta.proc.poll() is None  # it keeps its slot and retries with backoff
    finally:
        delta.stop()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_killing_the_host_takes_its_workers_down_and_the_farm_serves_on(
    remote_farm, keys, tmp_path, wait_for
):
    beta = _join(remote_farm, keys.host_secret, "beta", 1, tmp_path, keys)
    try:
        _wait_hosted(remote_farm, beta, 1, wait_for)
        pids = [int(c) for c in Path(f"/proc/{beta.proc.pid}/task/{beta.proc.pid}/children")
                .read_text().split()]  # fmt: skip
        pids += list(beta.workers().values())
        assert len(pids) >= 2 and all(_alive(p) for p in pids)
        beta.proc.kill()
        beta.proc.wait()
        wait_for(lambda: not any(_alive(p) for p in pids), 60, "the host's workers to die")
        with Client(remote_farm.address, timeout=300) as client:
            target = client.reset(seed=5, index=0)
            results = client.step_many([dsl_program(target.scene)] * 6, target, window=6)
        assert [r.outcome for r in results] == ["ok"] * 6
        wait_for(lambda: _hosted(remote_farm, "beta") == {}, 60, "the farm to drop beta's")
    finally:
        beta.stop()


def _send_step(address: str, rid: str, script: str, target_id: str) -> None:
    """Send one step request and go (its answer is never awaited)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(address)
    header = {"v": 1, "id": rid, "type": "step", "script": script}
    sock.send_multipart([b"", *codec.encode({**header, "target": {"target_id": target_id}})])
    sock.close(linger=2000)


def test_a_host_outlives_its_farm_and_joins_the_next(keys, options, tmp_path, wait_for):
    port = _free_port()
    farm = _start_farm(keys, options, port)
    gamma = _join(farm, keys.host_secret, "gamma", 1, tmp_path, keys)
    try:
        first = _wait_hosted(farm, gamma, 1, wait_for)
        pids = gamma.workers()
        # the farm goes away while gamma's worker runs a long job (longer than a farm
        # takes to come back): it must not rejoin the next farm before that result
        with Client(farm.address, timeout=300) as client:
            target = client.reset(seed=6, index=0)
        for rid in ("long-1", "long-2"):  # one for the local worker, one for gamma's
            _send_step(farm.address, rid, LONG, target.target_id)
        wait_for(lambda: _hosted(farm, "gamma", "busy"), 60, "gamma's worker busy")
        farm.stop()
        farm = _start_farm(keys, options, port)  # a new broker that never saw gamma
        assert _wait_hosted(farm, gamma, 1, wait_for).keys() == first.keys()
        assert gamma.workers() == pids  # the same worker processes, kept meanwhile
        assert "reconnected during a job: it rejoins after the result" in gamma.log_text()
        with Client(farm.address, timeout=300) as client:
            target = client.reset(seed=6, index=0)
            results = client.step_many([SLOW] * 6, target, window=6)
        assert [r.outcome for r in results] == ["ok"] * 6
        assert all(w["jobs"] > 0 for w in _hosted(farm, "gamma").values())
    finally:
        gamma.stop()
        farm.stop()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "derender.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_join_refuses_keys_the_workers_could_read_and_bad_names(keys, tmp_path):
    # a Blender install dir is bound into every sandboxed worker: a key there is exposed
    blender_dir = tmp_path / "blender-5.0"
    _, inside = create_keypair(blender_dir, "host")
    common = ["farm", "join", "--connect", "tcp://127.0.0.1:1", "--server-key"]
    common.append(str(keys.farm_public))
    out = _cli(*common, "--keys", str(inside), "--blender", str(blender_dir / "blender"))
    assert out.returncode == 2 and "every sandboxed worker can read" in out.stderr
    out = _cli(*common, "--keys", str(keys.host_secret), "--name", "no spaces")
    assert out.returncode == 2 and "'no spaces'" in out.stderr
    out = _cli(*common, "--keys", str(keys.farm_public))
    assert out.returncode == 2 and "holds no secret key" in out.stderr


def test_a_worker_connects_only_to_a_local_socket():
    worker = [sys.executable, "-m", "derender.addon.worker", "--identity", "x", "--config", "{}"]
    out = subprocess.run(
        [*worker, "--connect", "tcp://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "only to a local ipc:// socket" in out.stderr
