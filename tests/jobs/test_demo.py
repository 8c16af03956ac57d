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
    with LocalFarm(workers=2, engine="workbench", size=64, svg_workers=1) as farm:
        yield farm.address


def test_run_demo_writes_report_and_contact_sheet(address, tmp_path):
    cfg = DemoConfig(
        targets=2, budgets=(8, 24), batch=8, min_objects=3, max_objects=3, svg_targets=0
    )
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


def test_the_demo_shows_the_svg_environment_too(address, tmp_path):
    cfg = DemoConfig(targets=1, budgets=(4,), batch=4, svg_targets=2, svg_budgets=(8, 32))
    result = run_demo(cfg, address, log=lambda _: None)
    svg = result.svg
    assert svg is not None and svg.env == "svg" and svg.presets == ["seed-svg", "svg-elements"]
    oracle, random_, search = svg.rows
    assert oracle.rewards["seed-svg"] == pytest.approx([1.0, 1.0])
    assert oracle.mean("svg-elements") > search.mean("svg-elements") > random_.mean("svg-elements")
    assert search.renders == 2 * 32 and oracle.f1 == []
    assert svg.wall_s < 60  # seconds: an SVG step is milliseconds
    report, _ = write_report(result, tmp_path / "both")
    text = report.read_text()
    assert (
        "## SVG environment" in text
        and "| agent | reward (seed-svg) | reward (svg-elements) |" in text
    )
    assert "seed-svg" not in text.split("## SVG environment")[0]  # CLEVR table: CLEVR presets
    image = np.asarray(Image.open(tmp_path / "both" / "contact_sheet_svg.png"))
    assert image.shape == (16 + 2 * 64 + 4, 4 * 64 + 3 * 4, 3)
    assert np.array_equal(image[16:80, 68:132], oracle.attempts[0].result.image)


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
            "--svg-targets",
            "1",
        ]
    )
    assert status == 0
    assert (out / "report.md").exists() and (out / "contact_sheet.png").exists()
    assert (out / "contact_sheet_svg.png").exists()
    printed = capsys.readouterr().out
    assert str(out / "report.md") in printed and "within 8 renders" in printed
    assert main(["demo", "--budgets", "0"]) == 2
