"""`import derender` and `derender.scenes` stay free of bpy, torch and zmq."""

from __future__ import annotations

import subprocess
import sys


def test_package_import_loads_no_heavy_dependency():
    code = (
        "import sys, derender, derender.scenes, derender.cli\n"
        "derender.cli.build_parser()\n"
        "print(sorted(m for m in ('bpy', 'torch', 'zmq') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_version_and_help():
    out = subprocess.run(
        [sys.executable, "-m", "derender.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("derender ")
    out = subprocess.run(
        [sys.executable, "-m", "derender.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "scenes" in out.stdout


def test_scenes_command_writes_json_and_programs(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "derender.cli",
            "scenes",
            "--seed",
            "3",
            "--count",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "000000.bpy.py",
        "000000.dsl.py",
        "000001.bpy.py",
        "000001.dsl.py",
        "scenes.json",
    ]


def test_scenes_command_jitter_writes_each_scenes_exact_frame(tmp_path):
    import json

    from derender.scenes import FrameSpec, load_scenes

    argv = ["scenes", "--seed", "3", "--count", "2", "--out", str(tmp_path), "--jitter"]
    out = subprocess.run([sys.executable, "-m", "derender.cli", *argv], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "scenes.json").read_text())["info"]["jitter"] is True
    a, b = (FrameSpec().posed(s.extra) for s in load_scenes(tmp_path / "scenes.json"))
    assert a != b and a != FrameSpec()  # every scene its own jittered camera and lights
