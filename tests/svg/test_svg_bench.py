"""SVG farm speed: SVG workers recycle on their own schedule, and ``derender bench farm
--env svg`` runs for real and reports its ratio against a bare cairosvg loop."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from derender.farm.config import FarmConfig
from derender.farm.local import LocalFarm
from derender.protocol.client import Client
from derender.svg import generate


def test_svg_workers_recycle_on_their_own_schedule() -> None:
    config = FarmConfig(recycle_every=7, svg_recycle_every=20000)
    assert config.recycle_after("svg") == 20000
    assert config.recycle_after("step") == config.recycle_after("target") == 7
    assert FarmConfig().recycle_after("svg") >= 40 * FarmConfig().recycle_after("step")


@pytest.mark.parametrize(
    ("recycle_every", "svg_recycle_every", "restarted"), [(3, 0, False), (500, 3, True)]
)
def test_an_svg_farm_restarts_its_worker_only_after_svg_recycle_every_jobs(
    recycle_every: int, svg_recycle_every: int, restarted: bool
) -> None:
    docs = [generate(2, i).to_svg() for i in range(8)]
    options = dict(workers=0, target_workers=0, svg_workers=1, metrics_interval=0)
    with (
        LocalFarm(
            **options, recycle_every=recycle_every, svg_recycle_every=svg_recycle_every
        ) as farm,
        Client(farm.address, timeout=120) as client,
    ):
        target = client.reset(1, env="svg")
        assert [r.outcome for r in client.step_many(docs, target)] == ["ok"] * len(docs)
        assert (client.status()["restarts"] >= 2) is restarted


def test_bench_farm_env_svg_reports_a_ratio_against_bare_cairosvg(tmp_path) -> None:
    out = tmp_path / "svg.json"
    cmd = [sys.executable, "-m", "derender.cli", "bench", "farm", "--env", "svg"]
    cmd += ["--workers", "1", "--steps", "120", "--repeat", "1", "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    assert "ratio vs bare" in run.stdout
    report = json.loads(out.read_text())
    assert report["env"] == "svg" and report["preset"] == "seed-svg" and report["size"] == 64
    assert report["bare_steps_per_s"] > 0 and report["farm"]["steps_per_s"] > 0
    assert report["ratio_vs_bare"] == pytest.approx(
        report["farm_steps_per_s_per_worker"] / report["bare_steps_per_s"]
    )
    assert report["farm"]["worker_restarts"] == 0
    cpu = report["farm"]["cpu_ms_per_step"]
    assert cpu["broker"] > 0 and cpu["workers"] > 0  # the sandboxed worker's CPU is seen
