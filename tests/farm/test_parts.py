"""The farm's parts without Blender: config, the batched reward stage, metrics."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from derender.farm.config import FarmConfig
from derender.farm.metrics import Metrics
from derender.farm.reward_stage import Finished, RewardStage
from derender.farm.supervisor import Supervisor
from derender.protocol.results import ScriptRun
from derender.protocol.targets import Target
from derender.scenes import generate_scene


def test_config_loads_toml_and_flags_override(tmp_path):
    path = tmp_path / "farm.toml"
    path.write_text(
        'workers = 3\nengine = "cycles"\nsize = 64\ngpus = [0, 1]\nhard_deadline = 9.5\n'
    )
    cfg = FarmConfig.load(path, workers=5, engine=None)
    assert (cfg.workers, cfg.engine, cfg.size, cfg.gpus, cfg.hard_deadline) == (
        5,
        "cycles",
        64,
        (0, 1),
        9.5,
    )
    assert cfg.frame().engine == "cycles" and cfg.frame().width == 64
    assert FarmConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown farm config key"):
        FarmConfig.from_dict({"wokers": 2})
    with pytest.raises(ValueError, match="engine"):
        FarmConfig(engine="povray")


def test_an_unsandboxed_worker_gets_its_gpu_a_fresh_temp_dir_and_no_parent_env(
    tmp_path, monkeypatch
):
    import subprocess

    monkeypatch.setenv("DERENDER_TEST_API_KEY", "sk-secret")
    backends = {"step": "ipc:///nonexistent/step", "target": "ipc:///nonexistent/target"}
    sup = Supervisor(FarmConfig(gpus=(2, 5), os_sandbox=False), tmp_path, backends)
    envs = []
    for slot in range(3):
        proc, tmpdir = sup.launcher.launch(["/usr/bin/env"], slot, stdout=subprocess.PIPE)
        out, _ = proc.communicate(timeout=30)
        envs.append((dict(line.split("=", 1) for line in out.decode().splitlines()), tmpdir))
    assert [e["CUDA_VISIBLE_DEVICES"] for e, _ in envs] == ["2", "5", "2"]
    assert all(e["TMPDIR"] == e["HOME"] == str(d) for e, d in envs)
    assert all(d is not None and d.parent == tmp_path for _, d in envs)
    assert all("DERENDER_TEST_API_KEY" not in e for e, _ in envs)
    cmd = sup.launcher.worker_command("s0-1", "step")
    assert cmd[:5] == [sys.executable, "-I", "-B", "-m", "derender.addon.worker"]
    assert cmd[cmd.index("--identity") + 1] == "s0-1"
    assert cmd[cmd.index("--connect") + 1] == backends["step"]
    target = sup.launcher.worker_command("t2-3", "target")
    assert target[target.index("--role") + 1] == "target"
    assert target[target.index("--connect") + 1] == backends["target"]
    assert [sup.launcher.role(slot) for slot in range(3)] == ["step", "step", "target"]
    assert all(e["LP_NUM_THREADS"] == sup.config.render_env()["LP_NUM_THREADS"] for e, _ in envs)


def test_render_threads_share_the_cpus_out_among_step_workers(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    threads = {w: FarmConfig(workers=w).render_env()["LP_NUM_THREADS"] for w in (1, 4, 8, 16, 32)}
    # one or no CPU each: llvmpipe renders in the worker's own thread (0)
    assert threads == {1: "16", 4: "4", 8: "2", 16: "0", 32: "0"}
    assert FarmConfig(workers=1, render_threads=0).render_env() == {"LP_NUM_THREADS": "0"}
    for bad in (-1, 257, 1.5, True, "4"):
        with pytest.raises(ValueError, match=f"render_threads must be .* got {bad!r}"):
            FarmConfig(render_threads=bad)


def test_a_sandboxed_farm_refuses_gpus_that_are_not_there(tmp_path):
    from derender.farm.gpu_devices import GPUNotFound

    backends = {}
    for role in ("step", "target"):
        (tmp_path / role).mkdir()
        backends[role] = f"ipc://{tmp_path}/{role}/backend.sock"
    with pytest.raises(GPUNotFound, match="GPU 3 is not on this machine"):
        Supervisor(FarmConfig(gpus=(3,)), tmp_path, backends)


def _target(size: int = 32) -> Target:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Target("t-1", generate_scene(1, 0), image, None, "f" * 16)


def test_reward_stage_scores_everything_queued_in_one_batch_per_preset():
    from derender.scenes import FrameSpec

    stage = RewardStage(FrameSpec(engine="workbench").with_size(32), "seed")
    target = _target()
    noisy = np.clip(target.image.astype(int) + 40, 0, 255).astype(np.uint8)
    bodies: dict[int, dict] = {}
    renders = [target.image, noisy, None]
    for i, image in enumerate(renders):
        result = (
            ScriptRun.ended("syntax_error", "bad")
            if image is None
            else ScriptRun("ok", image=image, scene=target.scene, timings={"render": 0.01})
        )
        stage.add(
            Finished(
                "pass", target, "seed", False, result, lambda body, i=i: bodies.__setitem__(i, body)
            )
        )
    stage.add(
        Finished(
            "pass",
            target,
            "scene",
            False,
            ScriptRun("ok", image=target.image, scene=target.scene),
            lambda body: bodies.__setitem__(3, body),
        )
    )
    assert stage.flush() == 4 and stage.batches == 2 and len(stage) == 0
    assert bodies[0]["reward"] > bodies[1]["reward"] > bodies[2]["reward"] == 0.0
    assert bodies[0]["components"]["mse"] == 0.0 and bodies[1]["components"]["mse"] > 0
    assert bodies[2]["outcome"] == "syntax_error" and bodies[2]["image"] is None
    assert bodies[3]["preset"] == "scene" and bodies[3]["components"]["scene_graph"] == 1.0
    assert bodies[0]["spec_hash"] != bodies[3]["spec_hash"]
    assert {"render", "reward", "reward_wait"} <= set(bodies[0]["timings"])


def test_metrics_percentiles_and_rate():
    m = Metrics(window=100)
    assert m.percentiles() == {"p50": None, "p99": None}
    for k in range(1, 101):
        m.answered("step", k / 1000)
    m.answered("ping", 5.0)  # pings are not latency samples
    lat = m.percentiles()
    assert lat["p50"] == pytest.approx(0.0505) and lat["p99"] == pytest.approx(0.09901)
    assert m.rate() > 0 and m.snapshot()["replies"] == {"step": 100, "ping": 1}


def test_restart_backoff_grows_for_blamed_deaths_only(tmp_path):
    import time

    sup = Supervisor(
        FarmConfig(restart_backoff=0.5, restart_backoff_max=1.5, os_sandbox=False),
        tmp_path,
        {"step": "ipc:///x", "target": "ipc:///y"},
    )

    def delay(blame: bool) -> float:
        sup.restart(0, blame=blame)
        return round(sup._due[0] - time.monotonic(), 1)

    assert [delay(True) for _ in range(4)] == [0.5, 1.0, 1.5, 1.5]  # capped
    assert delay(False) == 0.0  # a job's fault: at once, and no growth
    sup.healthy(0)
    assert delay(True) == 0.5
    assert sup.restarts == 6


@pytest.mark.parametrize(
    "options",
    [
        {"bind": "tcp://0.0.0.0:7778"},
        {"bind": ("tcp://127.0.0.1:*", "tcp://0.0.0.0:7777")},
        {"remote_backend": "tcp://0.0.0.0:7779"},
    ],
)
def test_exposed_addresses_without_curve_keys_are_refused(tmp_path, options):
    from derender.farm.broker import Broker
    from derender.protocol.transport import InsecureBind

    with pytest.raises(InsecureBind, match=r"0\.0\.0\.0"):
        Broker(FarmConfig(**options), tmp_path)


def test_derender_farm_refuses_an_exposed_bind_with_status_2(capsys):
    from derender.cli import main

    assert main(["farm", "--bind", "tcp://0.0.0.0:7780", "--workers", "1"]) == 2
    assert "without CURVE keys" in capsys.readouterr().err
