"""What the OS sandbox (bubblewrap) costs: worker start-up, and farm throughput.

    .venv/bin/python bench/os_sandbox.py [--runs 10] [--engine workbench] [--size 64]
                                         [--steps 200] [--workers 2] [--repeat 2]

- **start-up**: the time from spawning a step worker (``Supervisor.spawn``) to its ``ready``
  message, after a target worker has filled the shader cache (:mod:`..farm.shader_cache`)
  as in a running farm, with the OS sandbox and without it (``os_sandbox=False``; Mesa's
  own cache in the user's home), runs interleaved
  A B A B so that drifting outside load hits both alike; also the same for a bare
  ``python -I -c pass`` through ``Supervisor.launch`` (bwrap's own cost, without Blender).
- **throughput**: ``derender bench farm``'s farm and bare-loop measurements (from
  :mod:`derender.bench.farm`), farm with the sandbox on and off, best of ``--repeat``
  interleaved runs; efficiency = farm steps/s / (bare steps/s × workers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import zmq

from ..farm.config import FarmConfig
from ..farm.jobs import ROLES
from ..farm.supervisor import Supervisor
from ..protocol import codec
from . import farm as farm_bench


def _supervisors(config: FarmConfig, run_dir: Path) -> tuple[zmq.Socket, dict[str, Supervisor]]:
    (run_dir / "step").mkdir()  # slot 0 holds a step worker
    backend = f"ipc://{run_dir / 'step' / 'backend.sock'}"
    backends = dict.fromkeys(ROLES, backend)
    router: zmq.Socket = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # both modes reuse identities (w0-1, ...)
    router.bind(backend)
    modes = {
        "sandboxed": Supervisor(config, run_dir, backends),
        "unsandboxed": Supervisor(
            FarmConfig(**{**config.to_dict(), "os_sandbox": False}), run_dir, backends
        ),
    }
    assert modes["sandboxed"].os_sandboxed, modes["sandboxed"].os_sandbox_problem
    return router, modes


def _ready_time(router: zmq.Socket, sup: Supervisor, slot: int = 0) -> float:
    t0 = time.perf_counter()
    wp = sup.spawn(slot)
    try:
        while router.poll(300_000):
            frames = router.recv_multipart()
            if (
                frames[0] == wp.identity.encode()
                and codec.decode(frames[1:]).get("kind") == "ready"
            ):
                return time.perf_counter() - t0
        raise TimeoutError(f"worker {wp.identity} was not ready within 300 s")
    finally:
        sup.kill(slot)


def _python_time(sup: Supervisor) -> float:
    t0 = time.perf_counter()
    proc, tmpdir = sup.launcher.launch([sys.executable, "-I", "-c", "pass"], 0)
    if proc.wait() != 0:
        raise RuntimeError(f"python -c pass failed with status {proc.returncode}")
    elapsed = time.perf_counter() - t0
    if tmpdir is not None:
        subprocess.run(["rm", "-rf", str(tmpdir)], check=True)
    return elapsed


def startup(config: FarmConfig, runs: int) -> dict[str, dict[str, float]]:
    """Median (and min/max) seconds to ready, sandboxed and not, and their ratio."""
    with tempfile.TemporaryDirectory(prefix="derender-bench-") as tmp:
        router, modes = _supervisors(config, Path(tmp))
        times: dict[str, list[float]] = {
            f"{k} {m}": [] for k in ("worker", "python") for m in modes
        }
        try:
            # A target worker fills the farm's shader cache, as one does when a farm
            # starts: the step workers measured here start as a farm's restarts do.
            _ready_time(router, modes["sandboxed"], config.workers)
            for _ in range(runs):
                for mode, sup in modes.items():
                    times[f"worker {mode}"].append(_ready_time(router, sup))
                    times[f"python {mode}"].append(_python_time(sup))
        finally:
            router.close(0)
    report = {
        k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in times.items()
    }
    for what in ("worker", "python"):
        on, off = times[f"{what} sandboxed"], times[f"{what} unsandboxed"]
        report[f"{what} ratio"] = {
            "median": statistics.median(a / b for a, b in zip(on, off, strict=True))
        }
    return report


def throughput(config: FarmConfig, steps: int, repeat: int) -> dict[str, float]:
    """Farm steps/s with the sandbox on and off, the bare loop, and the efficiencies."""
    off = FarmConfig(**{**config.to_dict(), "os_sandbox": False})
    runs: dict[str, list[float]] = {"bare": [], "farm sandboxed": [], "farm unsandboxed": []}
    for _ in range(repeat):
        runs["bare"].append(farm_bench._bare(config, max(20, steps // 4))["steps_per_s"])
        runs["farm sandboxed"].append(farm_bench._farm(config, steps)["steps_per_s"])
        runs["farm unsandboxed"].append(farm_bench._farm(off, steps)["steps_per_s"])
    best = {k: max(v) for k, v in runs.items()}  # outside load only ever slows a run down
    ideal = best["bare"] * config.workers
    return {
        **{f"{k} steps/s": v for k, v in best.items()},
        "efficiency sandboxed": best["farm sandboxed"] / ideal,
        "efficiency unsandboxed": best["farm unsandboxed"] / ideal,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="derender bench os-sandbox")
    parser.add_argument("--runs", type=int, default=10, help="start-ups per mode")
    parser.add_argument("--engine", default="workbench")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip", choices=["startup", "throughput"], help="leave one part out")
    args = parser.parse_args(argv)
    config = FarmConfig(
        workers=args.workers, engine=args.engine, size=args.size, metrics_interval=0
    )
    report: dict[str, object] = {"engine": args.engine, "size": args.size, "workers": args.workers}
    if args.skip != "startup":
        report["startup_s"] = startup(config, args.runs)
    if args.skip != "throughput":
        report["throughput"] = throughput(config, args.steps, args.repeat)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
