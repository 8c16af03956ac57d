"""``derender bench farm`` runs for real: the farm it measures is OS-sandboxed, and the
bare loop it is compared with runs the passes a farm worker runs."""

from __future__ import annotations

import pytest
from derender import reward
from derender.bench import farm as farm_bench
from derender.farm.core import Passes


def test_the_bare_loop_runs_a_workers_passes_for_the_farms_preset() -> None:
    # the default preset scores no IoU: a worker renders the image only, so must the loop
    assert Passes.of(reward.preset("seed")) == Passes(render=True, masks=False, elements=False)
    assert Passes.of(reward.preset("graph")).render is False  # scene-graph terms only
    assert Passes.of(reward.preset("seed-svg")).masks is True  # it scores IoU


@pytest.mark.timeout(600)
def test_bench_farm_measures_an_os_sandboxed_farm_against_the_bare_loop() -> None:
    report = farm_bench.run(["workbench"], size=32, workers=1, steps=8, episodes=1)
    entry = report["engines"]["workbench"]
    assert entry["farm"]["os_sandboxed"] is True
    assert entry["bare"]["steps_per_s"] > 0 and entry["farm"]["steps_per_s"] > 0
    assert entry["efficiency"] == pytest.approx(
        entry["farm"]["steps_per_s"] / entry["bare"]["steps_per_s"]
    )
    for run in ("bare", "farm"):  # where a step goes, from the results' own timings
        assert entry[run]["step_ms"]["render_ms"] > 0 and entry[run]["step_ms"]["other_ms"] > 0
    assert entry["bare"]["step_ms"]["reward_ms"] == 0 < entry["farm"]["step_ms"]["reward_ms"]
    text = farm_bench.format_report(report)
    assert "OS sandbox on" in text and "(a) efficiency" in text and "broker reward" in text
