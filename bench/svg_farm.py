"""``derender bench farm --env svg``: SVG farm steps/s per worker against a bare cairosvg loop.

The same generated 2D compositions (``svg.generate``, seed 0) go through:

- **bare**: ``cairosvg.svg2png`` in a loop in this process: no policy, no sandbox, no
  sockets, no reward. The reference the issue names (goal: farm per worker >= 0.8 of it).
- **hardened**: :func:`derender.svg.render.render` in this process, without descriptors:
  the policy plus the render the worker does, so (farm / hardened) isolates the farm's own
  cost from the policy's.
- **farm**: an SVG-only :class:`LocalFarm` (``svg_workers`` sandboxed workers, no Blender)
  answers the documents as pipelined steps from one client, scored with ``preset``
  (``seed-svg`` by default). Its steps/s divided by the worker count is the per-worker rate.

Each measurement is the best of ``repeat`` interleaved runs (outside load only slows a run
down), and the report carries the machine's load average so a reader can judge it. The CPU
each farm process used per step (client, broker, workers) says where the time goes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from ..svg.canvas import SvgCanvas
from ..svg.generator import generate

DEFAULT_PRESET = "seed-svg"


def documents(count: int) -> list[str]:
    """``count`` generated compositions (seed 0): the bench's workload."""
    return [generate(0, i).to_svg() for i in range(count)]


def bare_loop(docs: Sequence[str], size: int) -> float:
    """Documents per second of plain ``cairosvg.svg2png`` at ``size`` px, in this process."""
    import cairosvg

    for doc in docs[:5]:
        cairosvg.svg2png(bytestring=doc.encode(), output_width=size, output_height=size)
    t0 = time.perf_counter()
    for doc in docs:
        cairosvg.svg2png(bytestring=doc.encode(), output_width=size, output_height=size)
    return len(docs) / (time.perf_counter() - t0)


def hardened_loop(docs: Sequence[str], size: int) -> float:
    """Documents per second of the worker's render (policy + cairosvg, no descriptors)."""
    from ..svg.render import render

    canvas = SvgCanvas(size, size)
    render(docs[0], canvas, elements=False)
    t0 = time.perf_counter()
    for doc in docs:
        render(doc, canvas, elements=False)
    return len(docs) / (time.perf_counter() - t0)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        kids = [int(c) for c in children.read_text().split()]
    except OSError:
        return []
    return kids + [d for k in kids for d in _descendants(k)]


def farm_loop(docs: Sequence[str], size: int, workers: int, preset: str) -> dict[str, Any]:
    """Steps/s of an SVG-only LocalFarm with ``workers`` SVG workers, and CPU per step."""
    from ..farm.local import LocalFarm
    from ..protocol.client import Client
    from ..protocol.results import StepResult

    svg_only = LocalFarm(
        workers=0, target_workers=0, svg_workers=workers, svg_size=size, preset=preset,
        metrics_interval=0,
    )  # fmt: skip
    with (
        svg_only as farm,
        Client(farm.address, timeout=600) as client,
    ):
        target = client.reset(seed=0, index=0, env="svg")
        client.step_many(list(docs[: 4 * workers]), target)  # warm-up
        broker = cast(int, farm.pid)
        roles = {"client": [os.getpid()], "broker": [broker], "workers": _descendants(broker)}
        before = {p: _cpu_s(p) for pids in roles.values() for p in pids}
        restarts = farm.status()["restarts"]
        t0 = time.perf_counter()
        results = cast(list[StepResult], client.step_many(list(docs), target, window=8 * workers))
        total = time.perf_counter() - t0
        # A worker replaced mid-run takes its CPU time with it: with restarts > 0 the
        # workers' figure is a lower bound (its replacement counts from its start).
        roles["workers"] = _descendants(broker)
        cpu = {
            role: sum(max(_cpu_s(p) - before.get(p, 0.0), 0.0) for p in pids)
            for role, pids in roles.items()
        }
        restarts = farm.status()["restarts"] - restarts
    bad = [r.outcome for r in results if r.outcome != "ok"]
    if bad:
        raise RuntimeError(f"SVG farm steps failed: {bad[:5]}")
    return {
        "steps_per_s": len(docs) / total,
        "cpu_ms_per_step": {k: v * 1000 / len(docs) for k, v in cpu.items()},
        "worker_restarts": restarts,
    }


def run(
    workers: int, size: int, steps: int, repeat: int = 1, preset: str = DEFAULT_PRESET
) -> dict[str, Any]:
    """The whole SVG benchmark; each measurement the best of ``repeat`` interleaved runs."""
    docs = documents(steps)
    bare, hardened, farms = [], [], []
    for _ in range(repeat):
        bare.append(bare_loop(docs, size))
        hardened.append(hardened_loop(docs, size))
        farms.append(farm_loop(docs, size, workers, preset))
    farm = max(farms, key=lambda r: r["steps_per_s"])
    per_worker = farm["steps_per_s"] / workers
    return {
        "env": "svg",
        "size": size,
        "workers": workers,
        "steps": steps,
        "repeat": repeat,
        "preset": preset,
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "bare_steps_per_s": max(bare),
        "hardened_steps_per_s": max(hardened),
        "farm": farm,
        "farm_steps_per_s_per_worker": per_worker,
        "ratio_vs_bare": per_worker / max(bare),
        "ratio_vs_hardened": per_worker / max(hardened),
    }


def format_report(report: dict[str, Any]) -> str:
    cpu = report["farm"]["cpu_ms_per_step"]
    load = ", ".join(f"{v:.1f}" for v in report["load_average"])
    return "\n".join(
        [
            f"derender bench farm --env svg: {report['workers']} SVG workers, "
            f"{report['size']} px, {report['steps']} documents, preset {report['preset']}, "
            f"best of {report['repeat']} (load average {load} on {report['cpus']} CPUs)",
            f"  bare cairosvg loop  {report['bare_steps_per_s']:8.1f} docs/s  "
            "(svg2png, in process)",
            f"  hardened render     {report['hardened_steps_per_s']:8.1f} docs/s  "
            "(policy + cairosvg, in process)",
            f"  farm                {report['farm']['steps_per_s']:8.1f} steps/s  "
            f"({report['farm_steps_per_s_per_worker']:.1f} per worker; "
            f"worker restarts {report['farm']['worker_restarts']})",
            f"  ratio vs bare       {report['ratio_vs_bare']:8.2f}  (per worker; goal >= 0.8)",
            f"  ratio vs hardened   {report['ratio_vs_hardened']:8.2f}",
            "  CPU ms per step     " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()),
        ]
    )
