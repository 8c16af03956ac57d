"""Soak: many mixed steps (ok, broken, hostile) on two workers; nothing lost or leaked.

The CI version runs 100 steps; ``pytest -m soak tests/farm/test_soak.py`` runs 5,000.
"""

from __future__ import annotations

import os

import pytest
from derender import Client
from derender.farm.local import LocalFarm
from derender.scenes import dsl_program

MIX = [  # one violation in ten: each recycles its worker (a Blender restart, ~2 s here)
    ("ok", None),
    ("syntax_error", "x = (\n"),
    ("runtime_error", "y = [1][5]\n"),
    ("ok", None),
    ("resource_limit", "x = 10 ** 10 ** 8\n"),
    ("ok", None),
    ("sandbox_violation", "().__class__.__bases__[0].__subclasses__()\n"),
    ("runtime_error", "def f():\n    return f()\nf()\n"),
    ("ok", None),
    ("syntax_error", "def (:\n"),
]


def _soak(steps: int) -> None:
    with LocalFarm(
        workers=2,
        engine="workbench",
        size=32,
        metrics_interval=0,
        sandbox_deadline=2.0,
        hard_deadline=20.0,
        recycle_every=25,
    ) as farm:
        run_dir = farm.run_dir
        assert run_dir is not None
        with Client(farm.address, timeout=300.0) as client:
            target = client.reset(seed=5, index=0)
            good = dsl_program(target.scene)
            plan = [MIX[i % len(MIX)] for i in range(steps)]
            scripts = [good if s is None else s for _, s in plan]
            rss: list[float] = []
            done = 0
            for chunk in range(0, steps, 250):
                part = client.step_many(scripts[chunk : chunk + 250], target, window=64)
                assert [r.outcome for r in part] == [o for o, _ in plan[chunk : chunk + 250]]
                done += len(part)
                workers = farm.status()["workers"]
                rss.append(max(w["rss_mb"] for w in workers))
                assert max(w["jobs"] for w in workers) <= 25  # recycled every 25 jobs
            assert done == steps
            status = farm.status()
            assert status["pending"] == 0 and status["queue"] == 0
            # recycling (each violation, every 25 jobs) keeps every worker young and small
            assert max(rss) < 1500, rss
            assert status["restarts"] >= steps // len(MIX)
            # sandboxed workers keep nothing on the host: their /tmp and /dev/shm are
            # private tmpfs that die with them; the run dir holds the socket dirs and the
            # shader cache that only target workers write (farm/shader_cache.py)
            names = sorted(p.name for p in run_dir.iterdir())
            assert names == ["address", "control.sock", "gl-cache", "step", "svg", "target"]
            for role in ("step", "target"):
                assert [p.name for p in (run_dir / role).iterdir()] == ["backend.sock"]
            # (a worker still starting has not told its pid yet: pid 0)
            pids = [w["pid"] for w in status["workers"] if w["pid"] > 0] + [farm.pid]
    assert not run_dir.exists()
    for pid in pids:  # stop() took the farm process and every worker with it
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not any(p.name.startswith(os.path.basename(run_dir)) for p in run_dir.parent.iterdir())


def test_soak_short():
    _soak(100)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_5000_mixed_steps():
    _soak(5000)
