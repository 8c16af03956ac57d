"""A client-only install (``pip install .``, no extras) on CPython 3.12 steps against a farm.

``make test`` builds ``.venv-client`` with ``PYENV_VERSION=3.12.1 python3.12`` and a plain
``pip install .``: numpy, pyzmq and pillow, no bpy, no RestrictedPython, no torch. Here that
interpreter runs a real step and a trainer adapter against the suite's farm.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)
CLIENT_PYTHON = Path(__file__).resolve().parents[2] / ".venv-client" / "bin" / "python"

SCRIPT = textwrap.dedent(
    """
    import importlib.metadata, importlib.util, json, sys
    from derender import Client
    from derender.rl.integrations import verl
    from derender.rl.integrations.dataset import task_rows
    from derender.scenes import dsl_program

    address = sys.argv[1]
    with Client(address) as client:
        target = client.reset(seed=4, index=0)
        step = client.step(dsl_program(target.scene), target)
        rows = list(task_rows(client, seed=4, count=1))
    broken = "```python\\nadd_object(\\n```"
    row = verl.compute_score("derender/clevr", broken, rows[0]["ground_truth"])
    print(json.dumps({
        "python": list(sys.version_info[:2]),
        "outcome": step.outcome, "reward": step.reward, "preset": step.preset,
        "failed_row": row,
        "absent": [m for m in ("bpy", "RestrictedPython", "torch", "gymnasium", "datasets")
                   if importlib.util.find_spec(m) is None],
        "requires": importlib.metadata.requires("derender"),
    }))
    """
)


def test_client_only_install_steps_against_a_farm(farm):
    if not CLIENT_PYTHON.exists():
        raise RuntimeError(f"{CLIENT_PYTHON} is missing: `make test` builds .venv-client")
    env = {"DERENDER_ADDRESS": farm.address, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [str(CLIENT_PYTHON), "-c", SCRIPT, farm.address],
        capture_output=True, text=True, timeout=240, env=env, cwd="/",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["python"] == [3, 12]
    assert got["outcome"] == "ok" and got["reward"] == pytest.approx(1.0, abs=1e-3)
    assert got["preset"] == "graph_image"
    assert got["failed_row"]["valid_program"] == 0.0 and got["failed_row"]["score"] == 0.0
    assert got["absent"] == ["bpy", "RestrictedPython", "torch", "gymnasium", "datasets"]
    base = [r for r in got["requires"] if "extra ==" not in r]
    assert sorted(r.split(">")[0].split("=")[0] for r in base) == ["numpy", "pillow", "pyzmq"]
