"""One script, one target, one reward: whichever way derender is served.

``derender farm`` (a LocalFarm), ``derender serve`` (a farm of one), ``derender exec`` (a
one-shot farm) and the panel's in-process path (the request core driving a Service in
this Blender) all score through the same code. Here they score the same scripts against
the same target under every preset, and the rewards and components must agree. The
scripts cover the terms that could tell the paths apart: the oracle in both dialects, the
oracle with 40 comment lines (``code_length`` needs the reference program), a moved
object, a runtime error and the empty script.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from derender import Client, reward
from derender.farm.local import LocalFarm
from derender.protocol.errors import ProtocolError
from derender.protocol.results import StepResult
from derender.scenes import Scene, bpy_program, dsl_program, generate_scene
from derender.scenes.clevr_json import scene_to_json

SIZE = 32
PRESETS = sorted(reward.PRESETS)
TARGET = generate_scene(5, 0)
_MOVED = Scene(
    (replace(TARGET.objects[0], x=-TARGET.objects[0].x), *TARGET.objects[1:]), TARGET.extra
)
SCRIPTS = {
    "oracle": dsl_program(TARGET),
    "oracle_bpy": bpy_program(TARGET),
    "commented": dsl_program(TARGET) + "# a note the agent left\n" * 40,
    "moved": dsl_program(_MOVED),
    "error": "raise ValueError('gives up')\n",
    "empty": "",
}
TOLERANCE = 1e-6  # batched LPIPS sums in another order; anything more is a real difference


def _rewards(client: Client) -> dict[tuple[str, str], StepResult]:
    target = client.reset(scene=TARGET, masks=False)
    out = {}
    for preset in PRESETS:
        results = client.step_batch(list(SCRIPTS.values()), target, preset=preset)
        for name, result in zip(SCRIPTS, results, strict=True):
            assert not isinstance(result, ProtocolError), (name, preset, result)
            out[name, preset] = result
    return out


def _close(a: float, b: float) -> bool:
    """Equal within TOLERANCE; an unavailable term (NaN, no LPIPS weights) on both sides."""
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, abs_tol=TOLERANCE)


def _same(a: StepResult, b: StepResult, where: str) -> None:
    assert a.outcome == b.outcome, where
    assert _close(a.reward, b.reward), (where, a.reward, b.reward)
    assert a.components.keys() == b.components.keys(), where
    for term, value in a.components.items():
        assert _close(value, b.components[term]), (where, term, value, b.components[term])
    assert a.unavailable == b.unavailable, where


@pytest.fixture(scope="module")
def farm_rewards() -> dict[tuple[str, str], StepResult]:
    with (
        LocalFarm(workers=1, engine="workbench", size=SIZE) as farm,
        Client(farm.address, timeout=300) as client,
    ):
        return _rewards(client)


def test_the_scripts_spread_the_rewards(farm_rewards) -> None:
    """The comparison means something: under each preset the scripts score apart."""
    for preset in PRESETS:
        oracle, moved = farm_rewards["oracle", preset], farm_rewards["moved", preset]
        assert oracle.outcome == "ok" and farm_rewards["error", preset].outcome == "runtime_error"
        assert oracle.reward > moved.reward, preset
    assert "code_length" in farm_rewards["commented", "rlrf"].components
    rlrf = {n: farm_rewards[n, "rlrf"].reward for n in ("oracle", "commented")}
    assert rlrf["commented"] < rlrf["oracle"]  # code_length saw the reference program


def test_serve_gives_the_farms_rewards(tmp_path: Path, spawn_serve, farm_rewards) -> None:
    args = ["--engine", "workbench", "--size", str(SIZE), "--address", "tcp://127.0.0.1:*"]
    proc, endpoints = spawn_serve(args, log=tmp_path / "serve.log")
    try:
        with Client(endpoints[0], timeout=300) as client:
            served = _rewards(client)
    finally:
        proc.terminate()
        proc.wait(60)
    for key, result in served.items():
        _same(farm_rewards[key], result, f"serve {key}")


def test_the_panels_in_process_path_gives_the_farms_rewards(farm_rewards) -> None:
    from derender.addon.service import Service
    from derender.farm.config import FarmConfig
    from derender.farm.in_process import Handler
    from derender.protocol.messages import Reset, SceneTarget, StepBatch, StepItem

    frame = FarmConfig(engine="workbench", size=SIZE).frame()
    handler = Handler(Service(frame))
    made = handler.handle(Reset("r", SceneTarget(TARGET), masks=False))
    assert made["frame_hash"] == farm_rewards["oracle", PRESETS[0]].frame_hash
    for preset in PRESETS:
        items = tuple(StepItem(s, made["target_id"]) for s in SCRIPTS.values())
        reply = handler.handle(StepBatch("b", items, preset))
        for name, body in zip(SCRIPTS, reply["results"], strict=True):
            _same(farm_rewards[name, preset], StepResult.from_wire(body), f"panel {name}")


@pytest.mark.parametrize(("name", "preset"), [("commented", "rlrf"), ("moved", "scene")])
def test_exec_gives_the_farms_reward(tmp_path: Path, farm_rewards, name, preset) -> None:
    (tmp_path / "s.py").write_text(SCRIPTS[name])
    (tmp_path / "target.json").write_text(scene_to_json(TARGET))
    cmd = [sys.executable, "-m", "derender.cli", "exec", "s.py", "--target", "target.json",
           "--out", "o.png", "--json", "--engine", "workbench", "--size", str(SIZE),
           "--preset", preset]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    want = farm_rewards[name, preset]
    assert report["outcome"] == want.outcome
    assert _close(report["reward"], want.reward)
    assert report["components"].keys() == want.components.keys()
    for term, value in want.components.items():
        assert _close(report["components"][term], value), term
