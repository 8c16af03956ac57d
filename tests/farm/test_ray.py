"""RayFarm on a real local Ray cluster: three raylets (a head and two worker nodes, each
with its own custom resource) on 127.0.0.1, started here, and real Blender workers in bwrap
inside Ray actors, joined to one broker over CURVE."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

# Ray on one machine without these would advertise (and dial) the host's public address;
# Ray reads them when it is imported, so they are set first. They concern Ray only.
LOOPBACK_ONLY = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray's single-machine mode: 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
}
os.environ.update(LOOPBACK_ONLY)
ray = pytest.importorskip("ray")
from derender import Client  # noqa: E402
from derender.farm.os_sandbox import BASE_ENV, NOBODY  # noqa: E402
from derender.farm.ray_farm import (  # noqa: E402
    ADDRESS_VARIABLE,
    BadGPUId,
    RayFarm,
    broker_address,
    gpu_indices,
)
from derender.scenes import dsl_program  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

NODE = {"node_ip_address": "127.0.0.1", "include_dashboard": False, "num_cpus": 2}


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={**NODE, "num_cpus": 0})
    nodes = {
        name: c.add_node(**NODE, resources={f"node-{name}": 1, "render": 2}) for name in ("a", "b")
    }
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c, nodes
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def farm(cluster, farm_options):
    # "render" lives on the worker nodes only: no actor lands on the driver's head node
    with RayFarm(
        workers=2, engine="workbench", size=32, resources={"render": 1}, **farm_options
    ) as f:
        yield f


@pytest.fixture(scope="module")
def client(farm):
    with Client(farm.address, timeout=180.0) as c:
        yield c


@pytest.fixture(scope="module")
def target(client):
    return client.reset(seed=11, index=0)


def _node_ids(nodes) -> dict[str, str]:
    return {name: node.node_id for name, node in nodes.items()}


def _ready(farm, count: int = 2):
    return farm.wait_ready(count, timeout=240)


def test_actors_spread_over_the_nodes_in_the_os_sandbox(cluster, farm):
    _, nodes = cluster
    workers = _ready(farm)
    assert {w["node"] for w in workers} == set(_node_ids(nodes).values())
    assert all(w["role"] == "step" and w["gpu"] is None for w in workers)
    status = farm.status()
    assert status["os_sandboxed"] is True
    assert status["remote_backend"].startswith("tcp://127.0.0.1:")
    # the broker's own workers: the target worker only
    assert [w["role"] for w in status["workers"] if w["slot"] is not None] == ["target"]
    for w in workers:  # the actors' workers run here: look at the real processes
        proc = Path(f"/proc/{w['pid']}")
        uids = next(x for x in (proc / "status").read_text().splitlines() if x.startswith("Uid"))
        assert uids.split()[1:] == [str(NOBODY)] * 4
        names = {e.split(b"=")[0].decode() for e in (proc / "environ").read_bytes().split(b"\0")}
        # nothing of Ray's, no keys: the sandbox's, the import path, GL threads and cache
        gl = {"LP_NUM_THREADS", "MESA_SHADER_CACHE_DIR", "DERENDER_GL_CACHE_SEED"}
        assert names - {""} <= {*BASE_ENV, "PYTHONPATH", "PWD", *gl}
        assert (proc / "net/dev").read_text().count(":") == 1  # lo only


def test_a_batch_of_200_spreads_over_workers_on_both_nodes(cluster, farm, client, target):
    _ready(farm)
    before = {w["id"]: w["jobs"] for w in farm.remote_workers()}
    results = client.step_many([dsl_program(target.scene)] * 200, target, window=16)
    assert [r.outcome for r in results] == ["ok"] * 200
    jobs_by_node: Counter[str] = Counter()
    for w in farm.remote_workers():
        jobs_by_node[w["node"]] += w["jobs"] - before.get(w["id"], 0)
    assert sum(jobs_by_node.values()) == 200
    assert len([n for n, jobs in jobs_by_node.items() if jobs > 0]) == 2, jobs_by_node


def test_the_named_actor_and_the_variable_tell_where_the_broker_is(farm, monkeypatch):
    @ray.remote(num_cpus=0)
    def ask() -> str:
        return broker_address()

    assert ray.get(ask.remote()) == farm.address  # from any Ray process on the cluster
    monkeypatch.setenv(ADDRESS_VARIABLE, "tcp://10.0.0.7:5555")
    assert broker_address() == "tcp://10.0.0.7:5555"


def test_a_poisoned_script_fails_alone_across_nodes(farm, client, target, crasher):
    old = {w["id"] for w in _ready(farm)}
    good = dsl_program(target.scene)
    before = farm.status()["metrics"]
    results = client.step_batch([good, crasher, good], target)
    assert [r.outcome for r in results] == ["ok", "poisoned", "ok"]
    assert "2 attempts" in results[1].message
    assert farm.status()["metrics"]["retries"] - before["retries"] == 1
    assert not old & {w["id"] for w in _ready(farm)}  # both crashed workers were replaced


def test_a_spinning_script_is_cut_at_the_hard_deadline(farm, client, target):
    _ready(farm)
    result = client.step("while True:\n    pass\n", target)
    assert result.outcome == "timeout" and "hard deadline" in result.message
    _ready(farm)  # the host replaced the worker the farm dropped
    assert client.step(dsl_program(target.scene), target).outcome == "ok"


def test_losing_a_node_mid_batch_loses_nothing_and_its_worker_moves(
    cluster, farm, client, target, wait_for
):
    c, nodes = cluster
    ids = _node_ids(nodes)
    _ready(farm)
    before = farm.status()["metrics"]
    slow = "for i in range(100000):\n    pass\n" + dsl_program(target.scene)
    out: list = []
    runner = threading.Thread(
        target=lambda: out.extend(client.step_many([slow] * 200, target, window=8))
    )
    runner.start()
    wait_for(
        lambda: (
            farm.status()["metrics"]["outcomes"].get("ok", 0) - before["outcomes"].get("ok", 0)
            >= 20
        ),
        120,
        "the batch to be under way",
    )
    c.remove_node(nodes["b"], allow_graceful=False)
    runner.join(timeout=400)
    assert not runner.is_alive()
    assert len(out) == 200 and [r.outcome for r in out] == ["ok"] * 200
    after = farm.status()["metrics"]
    # every step answered exactly once; each dispatch beyond 200 was a retry
    assert after["outcomes"]["ok"] - before["outcomes"].get("ok", 0) == 200
    assert after["jobs"] - before["jobs"] == 200 + after["retries"] - before["retries"]
    workers = wait_for(
        lambda: [w for w in _ready(farm) if w["node"] == ids["a"]][1:] and _ready(farm),
        240,
        "the lost node's worker to come back on node a",
    )
    assert ids["b"] not in {w["node"] for w in workers}
    results = client.step_many([dsl_program(target.scene)] * 8, target)
    assert [r.outcome for r in results] == ["ok"] * 8


def test_ray_gpu_ids_become_gpu_indices():
    assert gpu_indices(["0", "3"]) == (0, 3)
    assert gpu_indices([]) == ()
    with pytest.raises(BadGPUId, match="GPU-5f2c"):
        gpu_indices(["GPU-5f2c"])


def test_derender_farm_ray_local_serves_shows_nodes_and_stops(tmp_path, wait_for):
    """The CLI on a Ray of its own (``--ray local``): status names each worker's Ray node;
    SIGINT stops the actors, the broker and that Ray."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    log = tmp_path / "farm.log"
    argv = [sys.executable, "-m", "derender.cli", "farm", "--ray", "local", "--workers", "1"]
    argv += ["--size", "32", "--engine", "workbench", "--bind", address]
    with open(log, "w") as err:
        proc = subprocess.Popen(argv, stderr=err, start_new_session=True)
    try:
        wait_for(
            lambda: "clients connect to" in log.read_text() or proc.poll() is not None,
            300,
            "derender farm --ray to start",
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        out = subprocess.run(
            [sys.executable, "-m", "derender.cli", "farm", "status", "--address", address],
            capture_output=True,
            text=True,
            timeout=60,
        )
        step = [line for line in out.stdout.splitlines() if " step " in line]
        assert len(step) == 1 and " node farm " not in step[0], out.stdout
        assert " target " in out.stdout and "node farm" in out.stdout
        with Client(address, timeout=120) as client:
            assert client.step("pass\n", client.reset(seed=1, index=0), preset="scene").ok
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
