"""``derender bench farm``: what the farm costs and what it buys, per engine.

For each engine, at one resolution, with the ground-truth DSL program of one scene:

- **bare**: one process runs ``Service.step`` in a loop (the exact work a worker does per
  job, in a worker's render environment, no sockets, no reward), as many steps as each
  farm worker serves (``steps / workers``); ``bare steps/s × workers``
  is the ideal farm. The same loop in ``workers`` concurrent processes shows what the
  machine's cores allow (Cycles on a CPU already uses every core in one process, so
  ``× workers`` overstates the ideal).
- **farm**: a :class:`LocalFarm` with ``workers`` workers answers ``steps`` pipelined
  steps from one client (with rewards). Efficiency (a) = farm / (bare × workers).
- **naive**: one fresh ``python -c 'import bpy …'`` process per episode (import bpy, build
  the frame, run the step, exit), timed wall-clock. Speed-up (b) = farm steps/s × naive
  seconds per episode.
- **where a step goes**: the median render and other stages of a bare step and of a farm
  worker's step (from the timings each result carries), and the broker's reward: a farm
  slower than its bare loops with workers as fast as the bare loop lost the time outside
  the workers (reward, transport, the cores they share).
- **CPU per step**: the client's, the farm process's (broker, reward, supervisor) and the
  workers' own CPU time over the farm run (/proc), per step: on a machine whose cores the
  workers fill, what the farm process spends is taken from the renders.
- **latency** (c): p50/p99 of single steps sent one at a time to an idle farm, and the
  latency the farm adds over a bare step (farm p50 − bare p50).
- **ray farm** (``--ray``, d): the same measurement on a :class:`RayFarm` with as many
  workers, as Ray actors on a Ray of its own on this machine (loopback); (d) = ray farm
  steps/s / local farm steps/s, both in the same run.

Each measurement is the best of ``--repeat`` interleaved runs: on a shared machine,
outside load only ever slows a run down. ``python -m derender.bench.farm bare …`` is the
bare loop's child process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from .. import reward
from ..farm.config import FarmConfig
from ..farm.core import Passes
from ..scenes import dsl_program, generate_scene

_NAIVE = """\
import json, sys
import bpy
from derender.addon.service import Service
from derender.farm.config import FarmConfig
service = Service(FarmConfig.from_dict(json.loads(sys.argv[1])).frame())
print(service.step(sys.argv[2]).outcome)
"""


def _script() -> str:
    return dsl_program(generate_scene(0, 0))


def _pct(samples: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(samples, float)
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99))}


# A worker's stages besides the render (addon.service); the farm adds "reward" (broker).
_WORKER_STAGES = ("script", "compile", "modifiers", "verify", "masks", "readback", "reset")


def _where(timings: Sequence[dict[str, float]]) -> dict[str, float]:
    """Median ms per step: the render, the worker's other stages, and the broker's reward
    (0 in the bare loop): where a farm step goes, next to a bare one."""

    def median(key: Any) -> float:
        return 1000 * float(np.median([key(t) for t in timings])) if timings else 0.0

    return {
        "render_ms": median(lambda t: t.get("render", 0.0)),
        "other_ms": median(lambda t: sum(t.get(k, 0.0) for k in _WORKER_STAGES)),
        "reward_ms": median(lambda t: t.get("reward", 0.0)),
    }


def bare_loop(config: FarmConfig, steps: int) -> dict[str, Any]:
    """In this process (imports bpy): ``steps`` timed Service.step calls after a warm-up,
    with the passes a farm worker runs for the farm's preset (no masks pass unless the
    preset scores IoU), so that farm and bare loop do the same rendering work."""
    from ..addon.service import Service

    passes = Passes.of(reward.preset(config.preset))
    service = Service(config.frame())
    script = _script()
    for _ in range(3):
        outcome = service.step(script, masks=passes.masks, render=passes.render).outcome
        if outcome != "ok":
            raise RuntimeError(f"the ground-truth script failed in the bare loop: {outcome}")
    lat, stages = [], []
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        t = time.perf_counter()
        stages.append(service.step(script, masks=passes.masks, render=passes.render).timings)
        lat.append(time.perf_counter() - t)
    total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "steps_per_s": steps / total,
        "latency_s": _pct(lat),
        "step_ms": _where(stages),
        "cpu_ms_per_step": {"workers": 1000 * cpu / steps},  # this process's own CPU time
    }


def _bare(config: FarmConfig, steps: int, processes: int = 1) -> dict[str, Any]:
    """Bare loops in ``processes`` concurrent processes; steps/s summed over them."""
    cmd = [
        sys.executable,
        "-m",
        "derender.bench.farm",
        "bare",
        json.dumps(config.to_dict()),
        str(steps),
    ]
    # the render environment a farm worker gets (software GL threads)
    env = {**os.environ, **config.render_env()}
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        for _ in range(processes)
    ]
    runs = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"bare loop failed with status {p.returncode}")
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "steps_per_s": sum(r["steps_per_s"] for r in runs),
        "latency_s": runs[0]["latency_s"],
        "step_ms": runs[0]["step_ms"],
        "cpu_ms_per_step": runs[0]["cpu_ms_per_step"],
    }


def _naive(config: FarmConfig, episodes: int) -> dict[str, Any]:
    times = []
    for _ in range(episodes):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _NAIVE, json.dumps(config.to_dict()), _script()],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **config.render_env()},
        )
        times.append(time.perf_counter() - t0)
        if out.stdout.strip().splitlines()[-1] != "ok":
            raise RuntimeError(f"naive episode failed: {out.stdout[-200:]}")
    return {"seconds_per_episode": float(np.mean(times)), "episodes": episodes}


def _tree_cpu_s(root: int) -> dict[int, float]:
    """CPU seconds (user + system) so far of process ``root`` and of each of its live
    descendants, by pid, from /proc; {} where there is none (or no such process)."""
    ticks = os.sysconf("SC_CLK_TCK")
    own: dict[int, float] = {}  # pid -> seconds
    children: dict[int, list[int]] = {}  # ppid -> [pid]
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():  # self, thread-self, and what is not a process
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:  # it exited meanwhile
            continue
        # after the name: state, ppid, …; utime and stime are fields 14 and 15 of stat
        own[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = {}, [root] if root in own else []
    while todo:
        pid = todo.pop()
        tree[pid] = own[pid]
        todo += children.get(pid, [])
    return tree


class _TreeCpu:
    """CPU seconds that process ``root`` ("farm") and its descendants ("workers") spend
    inside the ``with`` block. Sampled every ``interval`` s, as a worker the supervisor
    replaces is killed with its group and never reaped by its parent: its time is what
    the last sample saw (its last moments idle, its job done)."""

    def __init__(self, root: int | None, interval: float = 0.2) -> None:
        self.root, self.interval = root, interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_done, daemon=True)

    def _sample(self) -> None:
        self.last.update(_tree_cpu_s(self.root) if self.root is not None else {})

    def _sample_until_done(self) -> None:
        while not self._done.wait(self.interval):
            self._sample()

    def __enter__(self) -> _TreeCpu:
        self._sample()
        self.first = dict(self.last)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self._sample()

    def seconds(self) -> dict[str, float]:
        """{"farm": s, "workers": s}; {} without /proc or a root."""
        if self.root not in self.first:
            return {}
        spent = {pid: t - self.first.get(pid, 0.0) for pid, t in self.last.items()}
        return {"farm": spent.pop(self.root), "workers": sum(spent.values())}


def _open_farm(config: FarmConfig, on_ray: bool) -> Any:
    """A LocalFarm, or (``on_ray``) a RayFarm on a Ray of its own with as many workers."""
    if not on_ray:
        from ..farm.local import LocalFarm

        return LocalFarm(**config.to_dict())
    from ..farm.ray_farm import RayFarm

    options = config.to_dict()
    return RayFarm(options.pop("workers"), ray_address="local", **options)


def _farm(config: FarmConfig, steps: int, on_ray: bool = False) -> dict[str, Any]:
    from ..protocol.client import Client
    from ..protocol.results import StepResult

    with _open_farm(config, on_ray) as farm, Client(farm.address, timeout=600) as client:
        target = client.reset(seed=0, index=0)
        script = _script()
        client.step_many([script] * 2 * config.workers, target)  # warm-up
        lat = []
        for _ in range(min(steps, 50)):  # single steps on an idle farm
            t = time.perf_counter()
            result = client.step(script, target)
            lat.append(time.perf_counter() - t)
        with _TreeCpu(None if on_ray else farm.pid) as tree:
            client0, t0 = time.process_time(), time.perf_counter()
            # without return_exceptions a failed step raises: every result is a StepResult
            results = cast(
                list[StepResult],
                client.step_many([script] * steps, target, window=4 * config.workers),
            )
            total = time.perf_counter() - t0
            cpu = {"client": time.process_time() - client0}
        cpu |= tree.seconds()
        bad = [r.outcome for r in results if r.outcome != "ok"]
        if bad or result.outcome != "ok":
            raise RuntimeError(f"farm steps failed: {bad[:5]}")
        status = farm.status()
    return {
        "os_sandboxed": bool(status.get("os_sandboxed")),
        "steps_per_s": steps / total,
        "latency_s": _pct(lat),
        "loaded_latency_s": status["metrics"]["latency_s"],
        "step_ms": _where([r.timings for r in results]),
        # by the processes' own CPU time: where the cores went (the farm process: broker,
        # reward, supervisor; absent on Ray)
        "cpu_ms_per_step": {k: 1000 * v / steps for k, v in cpu.items()},
    }


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    # On a shared machine other load only ever slows a run down: the fastest is the truest.
    if "steps_per_s" in runs[0]:
        return max(runs, key=lambda r: r["steps_per_s"])
    return min(runs, key=lambda r: r["seconds_per_episode"])


def run(
    engines: Sequence[str],
    size: int,
    workers: int,
    steps: int,
    episodes: int,
    repeat: int = 1,
    on_ray: bool = False,
) -> dict[str, Any]:
    """The whole benchmark; one entry per engine; each measurement best of ``repeat``,
    the repeats interleaved so that a burst of outside load hits all of them alike.
    ``on_ray`` adds a RayFarm with as many workers, against the local farm (d)."""
    report: dict[str, Any] = {
        "size": size,
        "workers": workers,
        "steps": steps,
        "repeat": repeat,
        "ray": on_ray,
        "engines": {},
    }
    for engine in engines:
        config = FarmConfig(workers=workers, engine=engine, size=size, metrics_interval=0)
        runs: dict[str, list[dict[str, Any]]] = {
            "bare": [],
            "parallel": [],
            "farm": [],
            "naive": [],
            "ray_farm": [],
        }
        for _ in range(repeat):
            # as many steps per process as each farm worker serves: the best of shorter,
            # noisier runs would overstate the bare loop
            share = max(20, steps // max(1, workers))
            runs["bare"].append(_bare(config, share))
            runs["parallel"].append(_bare(config, share, workers))
            runs["farm"].append(_farm(config, steps))
            runs["naive"].append(_naive(config, episodes))
            if on_ray:
                runs["ray_farm"].append(_farm(config, steps, on_ray=True))
        bare, parallel, farm, naive = (
            _best(runs[k]) for k in ("bare", "parallel", "farm", "naive")
        )
        entry = report["engines"][engine] = {
            "bare": bare,
            "bare_parallel": parallel,
            "farm": farm,
            "naive": naive,
            "efficiency": farm["steps_per_s"] / (bare["steps_per_s"] * workers),
            "efficiency_vs_parallel_bare": farm["steps_per_s"] / parallel["steps_per_s"],
            "speedup_vs_naive": farm["steps_per_s"] * naive["seconds_per_episode"],
            "added_latency_s": farm["latency_s"]["p50"] - bare["latency_s"]["p50"],
        }
        if on_ray:
            entry["ray_farm"] = ray_farm = _best(runs["ray_farm"])
            entry["ray_efficiency"] = ray_farm["steps_per_s"] / farm["steps_per_s"]
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"derender bench farm: {report['workers']} workers, {report['size']} px, "
        f"{report['steps']} steps, best of {report['repeat']}"
    ]
    for engine, r in report["engines"].items():
        b, f, n = r["bare"], r["farm"], r["naive"]
        lines += [
            f"[{engine}]",
            f"  bare loop        {b['steps_per_s']:8.2f} steps/s   p50 "
            f"{b['latency_s']['p50'] * 1000:7.1f} ms",
            f"  farm             {f['steps_per_s']:8.2f} steps/s   p50 "
            f"{f['latency_s']['p50'] * 1000:7.1f} ms  p99 {f['latency_s']['p99'] * 1000:7.1f} ms"
            f" (one at a time); OS sandbox {'on' if f['os_sandboxed'] else 'OFF'}",
            f"  bare x{report['workers']} at once  {r['bare_parallel']['steps_per_s']:8.2f} "
            "steps/s   (the same loop in parallel processes, summed)",
            f"  a step, p50 ms   bare: render {b['step_ms']['render_ms']:.1f}, the rest "
            f"{b['step_ms']['other_ms']:.1f}; farm worker: render {f['step_ms']['render_ms']:.1f},"
            f" the rest {f['step_ms']['other_ms']:.1f}; broker reward "
            f"{f['step_ms']['reward_ms']:.1f}",
            "  CPU per step, ms "
            + ", ".join(f"{k} {v:.2f}" for k, v in f["cpu_ms_per_step"].items())
            + f"; a bare loop's step {b['cpu_ms_per_step']['workers']:.2f} (own CPU time)",
            f"  naive process    {n['seconds_per_episode']:8.2f} s/episode",
            f"  (a) efficiency   {r['efficiency']:8.2f}   (farm / (bare x {report['workers']}),"
            " goal >= 0.85)",
            f"      vs parallel  {r['efficiency_vs_parallel_bare']:8.2f}   (farm / bare loops "
            "run at once: what this machine's cores allow)",
            f"  (b) vs naive     {r['speedup_vs_naive']:8.1f}x  (goal >= 30x)",
            f"  (c) added p50    {r['added_latency_s'] * 1000:8.1f} ms over a bare step",
        ]
        if "ray_farm" in r:
            rf = r["ray_farm"]
            lines += [
                f"  ray farm         {rf['steps_per_s']:8.2f} steps/s   p50 "
                f"{rf['latency_s']['p50'] * 1000:7.1f} ms  (the same workers as Ray actors)",
                f"  (d) ray / local  {r['ray_efficiency']:8.2f}   (goal >= 0.9)",
            ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="derender bench farm")
    parser.add_argument("mode", choices=["bare"])
    parser.add_argument("config", help="FarmConfig as JSON")
    parser.add_argument("steps", type=int)
    args = parser.parse_args(argv)
    print(json.dumps(bare_loop(FarmConfig.from_dict(json.loads(args.config)), args.steps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
