"""``derender bench step``: a short real run in a fresh process, its JSON read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_step_reports_the_json_scripts_read() -> None:
    cmd = [sys.executable, "-m", "derender.cli", "bench", "step", "--steps", "3", "--size", "32"]
    out = subprocess.run([*cmd, "--masks-steps", "1", "--json"], capture_output=True, text=True,
                         timeout=600, check=True)  # fmt: skip
    report = json.loads(out.stdout)  # stdout holds the report only, no render log
    # stderr: where Blender's log went, and a progress line per part, none of Blender's lines
    said = out.stderr.splitlines()
    log = Path(said[0].rpartition(" goes to ")[2])
    assert said[0].startswith("derender bench step: Blender's log goes to ")
    assert [line.split("] ")[1].split(":")[0] for line in said[1:]] == [
        "dsl", "dsl_code", "bpy", "bpy_new_sizes", "failing", "render-free dsl", "render-free bpy",
    ]  # fmt: skip
    assert "Saved: " in log.read_text() and "Saved: " not in out.stderr  # a line per render
    for dialect in ("dsl", "bpy", "bpy_new_sizes"):
        r = report[dialect]
        assert r["outcome"] == "ok"
        assert 0 < r["outside_render_ms"] <= r["outside_render_p99_ms"]
        assert r["render_ms"] > 0
        stages = {"compile", "script", "modifiers", "verify", "readback", "reset"}
        assert stages <= set(r["stages_cpu_ms"])
    for dialect in ("dsl", "bpy"):
        assert report["render_free_steps_per_s"][dialect] > 0
    assert report["dsl_code"]["outcome"] == "ok" and "verify" in report["dsl_code"]["stages_cpu_ms"]
    assert report["failing"]["outcome"] == "runtime_error"
    assert report["failing"]["render_ms"] == 0.0 and report["masks_ms"] > 0
    assert report["check_split_cpu"]["assets"] > 0


def test_bench_step_refuses_bad_arguments() -> None:
    cmd = [sys.executable, "-m", "derender.cli", "bench", "step", "--steps", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--steps >= 2" in out.stderr
