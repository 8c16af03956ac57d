"""``derender exec`` in a fresh process: JSON report, PNG, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from derender.reward import preset
from derender.reward.spec import DEFAULT_PRESET
from derender.scenes.clevr_json import scene_to_json
from derender.scenes.model import Scene, SceneObject
from PIL import Image


def _exec(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "derender.cli", "exec", *args]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_exec_renders_and_reports_json(tmp_path: Path) -> None:
    obj = SceneObject("cube", "large", "metal", "red", 0.0, 0.0, 0.3)
    (tmp_path / "s.py").write_text(
        "add_object('cube', 'large', 'metal', 'red', 0.0, 0.0, 0.3)\nprint('done')\n"
    )
    (tmp_path / "t.json").write_text(scene_to_json(Scene((obj,))))
    out = tmp_path / "out.png"
    proc = _exec(tmp_path, "s.py", "--out", str(out), "--json", "--size", "32",
                 "--target", "t.json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # stdout holds exactly one JSON object
    assert (report["outcome"], report["message"], report["stdout"]) == ("ok", "", "done\n")
    assert report["readback"]["objects"][0]["shape"] == "cube" and report["unmapped"] == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (32, 32, 3)
    target = np.asarray(Image.open(report["target_out"]))
    assert np.array_equal(image, target)  # the program is the target's ground truth
    assert report["reward"] == pytest.approx(preset(DEFAULT_PRESET).total_weight)
    assert report["components"]["ssim"] == pytest.approx(1.0)
    assert report["spec_hash"] == preset(DEFAULT_PRESET).hash()


def test_exec_scores_a_wrong_program_lower(tmp_path: Path) -> None:
    obj = SceneObject("cube", "large", "metal", "red", 0.0, 0.0, 0.3)
    (tmp_path / "t.json").write_text(scene_to_json(Scene((obj,))))
    (tmp_path / "s.py").write_text("add_object('sphere', 'small', 'rubber', 'blue', 2.0, 1.0)\n")
    proc = _exec(tmp_path, "s.py", "--out", "o.png", "--json", "--size", "32",
                 "--target", "t.json", "--preset", "scene")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["outcome"] == "ok"
    assert 0.0 < report["reward"] < 0.7 * preset("scene").total_weight


def test_exec_reports_failures_with_exit_zero(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import bpy\n\nbpy.data.objects['Camera'].location.x = 1\n")
    proc = _exec(tmp_path, "bad.py", "--out", "o.png", "--json", "--size", "16")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # stdout holds exactly one JSON object
    assert (report["outcome"], report["line"], report["out"]) == ("sandbox_violation", 3, None)
    assert "Camera" in report["message"]
    assert not (tmp_path / "o.png").exists()


def test_exec_usage_errors_exit_two(tmp_path: Path) -> None:
    proc = _exec(tmp_path, "missing.py", "--out", "o.png")
    assert proc.returncode == 2 and "cannot read missing.py" in proc.stderr
    (tmp_path / "s.py").write_text("pass\n")
    proc = _exec(tmp_path, "s.py", "--out", "o.png", "--preset", "nope")
    assert proc.returncode == 2 and "nope" in proc.stderr
