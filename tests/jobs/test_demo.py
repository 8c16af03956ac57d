"""``derender demo`` end to end on a live LocalFarm, at a tiny size."""

from __future__ import annotations

import numpy as np
import pytest
from derender.cli import main
from derender.farm.local import LocalFarm
from derender.jobs.demo import DemoConfig, run_demo, write_report
from derender.reward.spec import DEFAULT_PRESET
from PIL import Image

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def address():
    with LocalFarm(workers=2, engine="workbench", size=64) as farm:
        yield farm.address


def test_run_demo_writes_report_and_contact_sheet(address, tmp_path):
    cfg = DemoConfig(targets=2, budgets=(8, 24), batch=8, min_objects=3, max_objects=3)
    result = run_demo(cfg, address, log=lambda _: None)
    assert [r.agent for r in result.rows] == ["oracle", "random", "search"]
    oracle, random_, search = result.rows
    # the search agent climbs the farm's default preset
    assert oracle.mean(DEFAULT_PRESET) > random_.mean(DEFAULT_PRESET)
    assert (
        oracle.mean(DEFAULT_PRESET) >= search.mean(DEFAULT_PRESET) >= random_.mean(DEFAULT_PRESET)
    )
    assert oracle.f1 == [1.0, 1.0]
    assert search.renders == 2 * 24 and oracle.renders == 2
    curve = result.search_curve()
    assert [b for b, _ in curve] == [8, 24] and curve[0][1] <= curve[1][1]
    report, sheet = write_report(result, tmp_path / "demo")
    text = report.read_text()
    assert (
        "| agent | reward (graph_image) | reward (seed) | reward (rlrf) | reward (scene) |" in text
    )
    assert "| 24 |" in text and "![contact sheet](contact_sheet.png)" in text
    image = np.asarray(Image.open(sheet))
    # 2 rows of 64 px tiles (+ gap + label band), 4 columns (target + 3 agents)
    assert image.shape == (16 + 2 * 64 + 4, 4 * 64 + 3 * 4, 3)
    assert np.array_equal(image[16:80, :64], result.targets[0].image)


def test_cli_demo_against_a_running_farm(address, tmp_path, capsys):
    out = tmp_path / "cli"
    status = main(
        [
            "demo",
            "--address",
            address,
            "--out",
            str(out),
            "--targets",
            "1",
            "--budgets",
            "4,8",
            "--batch",
            "4",
        ]
    )
    assert status == 0
    assert (out / "report.md").exists() and (out / "contact_sheet.png").exists()
    printed = capsys.readouterr().out
    assert str(out / "report.md") in printed and "within 8 renders" in printed
    assert main(["demo", "--budgets", "0"]) == 2
