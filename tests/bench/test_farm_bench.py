"""``derender bench farm`` runs for real: the farm it measures is OS-sandboxed, and the
bare loop it is compared with runs the passes a farm worker runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

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
    cpu = entry["farm"]["cpu_ms_per_step"]  # /proc: the workers render, inside bwrap
    assert set(cpu) == {"client", "farm", "workers"} and cpu["workers"] > cpu["farm"] >= 0
    text = farm_bench.format_report(report)
    assert "OS sandbox on" in text and "(a) efficiency" in text and "broker reward" in text
    assert "CPU per step, ms client" in text and entry["bare"]["cpu_ms_per_step"]["workers"] > 0


_SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
# a child that starts a spinning grandchild and is killed before it could reap it
_SPIN_IN_A_GRANDCHILD = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {_SPIN!r} + "print('spun', flush=True)"])
time.sleep(30)
"""


def test_the_farm_tree_cpu_counts_a_grandchild_that_is_never_reaped() -> None:
    with farm_bench._TreeCpu(os.getpid(), interval=0.05) as tree:
        proc = subprocess.Popen([sys.executable, "-c", _SPIN_IN_A_GRANDCHILD],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "spun"
            time.sleep(0.2)  # the grandchild exits, orphaned: its time leaves the tree
        finally:
            proc.kill()
            proc.wait()
    spent = tree.seconds()
    assert spent["workers"] >= 0.3  # the spin, as the samples saw it
    assert spent["farm"] < 0.3  # this process only waited
    assert farm_bench._tree_cpu_s(proc.pid) == {}  # gone: nothing to read
