"""``derender exec --env svg``: one JSON object with the outcome, as the Blender exec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from derender.svg import generate

ATTACKS = Path(__file__).parent / "attacks"


def _exec(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "derender.cli", "exec", "--env", "svg", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.strip().splitlines()
    return json.loads(line)


def test_exec_scores_a_document_against_a_target(tmp_path):
    target = tmp_path / "target.svg"
    target.write_text(generate(4, 0).to_svg())
    png = tmp_path / "out.png"
    report = _exec(str(target), "--target", str(target), "--out", str(png))
    assert report["outcome"] == "ok" and report["reward"] == 1.0
    assert png.stat().st_size > 0
    hostile = _exec(str(ATTACKS / "sandbox_violation--xxe-file.svg"), "--target", str(target))
    assert hostile["outcome"] == "sandbox_violation" and hostile["reward"] == 0.0


def test_exec_reports_malformed_utf8_as_the_documents_syntax_error():
    report = _exec(str(ATTACKS / "syntax_error--malformed-utf8.svg"))
    assert report["outcome"] == "syntax_error"
    assert "UTF-8" in report["message"]
