"""``derender bench step``: what one step costs outside the render, by stage and dialect.

On a GPU an EEVEE render of a small CLEVR frame takes milliseconds, so what a step spends
outside the render decides how many steps per second a GPU host delivers. In one process
(one worker's Blender) this runs ``Service.step`` on a new script every time, as in RL
(every compile is cold), in four dialects:

- ``dsl``: ``add_object`` calls, ``--objects`` objects (the ground-truth DSL program): a
  literal program, read as data, so no agent code runs and the frame needs no check;
- ``dsl_code``: the same calls made by a Python loop over the objects' values: code, so
  it is compiled, run under the guards and checked like any script;
- ``bpy``: the LLM-style bpy program of the same scenes (primitive operators, CLEVR's
  shared materials, a bevel modifier, ``shade_smooth``); a stack seen twice before gets its
  cached result (:mod:`derender.addon.evaluated`), so after the warm-up its bevels are
  not evaluated again, neither for the render nor for the read-back; its one-line
  statements are compiled a line at a time (:mod:`derender.addon.sandbox.lines`): a new
  script compiles only its lines with new numbers;
- ``bpy_new_sizes``: the bpy program with its primitive operators' sizes never seen
  before in every step (an LLM that writes ``size=`` instead of ``obj.scale``, at its
  worst): each step makes new shared meshes and takes their snapshots;
- ``failing``: the bpy program with a runtime error at the end (no render, no read-back).

Per dialect it reports the median and p99 CPU time (process time: steady on a loaded
machine, unlike wall time) per step outside the render, split by stage (compile, script,
verify, masks, readback, reset), the render's own wall time beside it and their ratio,
and the render-free rate (``Service.step(render=False)``: no image, no masks, the
scene-graph-only case) in steps per second of CPU and of wall time. The masks pass is
measured apart (``--masks-steps``): no built-in reward preset needs it, and so are the two
generic comparisons (the frame's snapshots after every step, and every cached asset's, of
which a render compares only those it uses). The load
average before and after says how busy the machine was.

Blender's own log (a line per render, its GL and CUDA probes) goes to a file in the
system temp dir, named on stderr, which gets a progress line per part instead.

``--json`` prints ``{"dsl": {"outside_render_ms", "outside_render_p99_ms", "render_ms",
...}, "bpy": {...}, "render_free_steps_per_s": {"dsl", "bpy"}, ...}``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..scenes.frame import ENGINES, FrameSpec

if TYPE_CHECKING:
    from ..addon.frame import BuiltFrame

_RENDER_STAGES = frozenset({"render", "masks"})
_SAMPLES = {"eevee": 4, "workbench": 8, "cycles": 16}
DIALECTS = ("dsl", "dsl_code", "bpy", "bpy_new_sizes", "failing")
_SIZE_ARGUMENT = re.compile(r"\b(size|radius)=(\d+\.\d+)")


def _scripts(dialect: str, seed: int, objects: int) -> Callable[[int], str]:
    """Step ``i`` -> a new script of ``dialect`` (scene ``i`` of the seeded stream)."""
    from ..scenes.generator import GeneratorConfig, generate_scene
    from ..scenes.programs import bpy_program, dsl_program

    config = GeneratorConfig(min_objects=objects, max_objects=objects)

    def script(i: int) -> str:
        scene = generate_scene(seed, i, config)
        if dialect == "dsl":
            return dsl_program(scene)
        if dialect == "dsl_code":
            rows = "".join(
                f"    {(o.shape, o.size, o.material, o.color, o.x, o.y, o.rotation)!r},\n"
                for o in scene.objects
            )
            return f"objects = [\n{rows}]\nfor values in objects:\n    add_object(*values)\n"
        program = bpy_program(scene)
        if dialect == "bpy_new_sizes":
            scale = 1 + (i + 1) / 10_000  # a factor of its own per step
            return _SIZE_ARGUMENT.sub(lambda m: f"{m[1]}={float(m[2]) * scale!r}", program)
        if dialect == "failing":
            return program + f"\nraise ValueError('step {i} gives up')\n"
        return program

    return script


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median": 1000 * statistics.median(ordered), "p99": 1000 * p99}


def _dialect(service: Any, script: Callable[[int], str], steps: int, start: int) -> dict:
    """``steps`` timed steps (new scripts from index ``start``) after two untimed ones."""
    outcome = None
    for i in range(start - 2, start):
        outcome = service.step(script(i), masks=False).outcome
    outside, outside_wall, render_wall = [], [], []
    stages: dict[str, list[float]] = {}
    for i in range(start, start + steps):
        result = service.step(script(i), masks=False)
        outcome = result.outcome
        for name, cpu in result.cpu_timings.items():
            stages.setdefault(name, []).append(cpu)
        outside.append(sum(v for k, v in result.cpu_timings.items() if k not in _RENDER_STAGES))
        outside_wall.append(sum(v for k, v in result.timings.items() if k not in _RENDER_STAGES))
        if "render" in result.timings:
            render_wall.append(result.timings["render"])
    cpu, wall = _ms(outside), _ms(outside_wall)
    render_ms = _ms(render_wall)["median"] if render_wall else 0.0
    return {
        "outcome": outcome,
        "outside_render_ms": cpu["median"],
        "outside_render_p99_ms": cpu["p99"],
        "render_ms": render_ms,
        "outside_render_wall_ms": wall["median"],
        "outside_render_wall_p99_ms": wall["p99"],
        "outside_over_render": cpu["median"] / render_ms if render_ms else None,
        "stages_cpu_ms": {k: _ms(v)["median"] for k, v in stages.items()},
    }


def _render_free(service: Any, script: Callable[[int], str], steps: int, start: int) -> dict:
    """Render-free steps back to back: steps per second of wall and of CPU time (the
    scripts are generated before the clock starts: generating a scene costs more than
    a render-free step)."""
    service.step(script(start - 1), render=False)
    scripts = [script(i) for i in range(start, start + steps)]
    wall, cpu = time.perf_counter(), time.process_time()
    for text in scripts:
        service.step(text, render=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"steps_per_s": steps / wall, "steps_per_cpu_s": steps / cpu}


def _masks(service: Any, script: Callable[[int], str], steps: int, start: int) -> float:
    """Median wall ms of the masks pass (DSL scripts)."""
    times = [
        service.step(script(i), masks=True).timings["masks"] for i in range(start, start + steps)
    ]
    return _ms(times)["median"]


def _check_split(built_frame: BuiltFrame, spec: FrameSpec, repeat: int = 20) -> dict[str, float]:
    """Median CPU ms of the two generic comparisons inside the check, on an idle frame
    with whatever the run cached: every frame datablock, every cached asset."""
    from ..addon import assets

    def cpu_ms(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeat):
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        return 1000 * statistics.median(times)

    return {
        "frame_ms": cpu_ms(lambda: built_frame.differences(spec)),
        "assets_ms": cpu_ms(lambda: assets.edited(assets.cached())),
        "assets": len(assets.cached()),
    }


def measure(
    engine: str,
    size: int,
    objects: int,
    steps: int,
    masks_steps: int,
    seed: int,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """The whole benchmark in this process (imports bpy); ``progress`` is told each part
    as it finishes."""
    from ..addon.sandbox.limits import ScriptLimits
    from ..addon.service import Service

    spec = FrameSpec(width=size, height=size, engine=engine, samples=_SAMPLES[engine])
    load_before = os.getloadavg()
    service = Service(spec, ScriptLimits())
    scripts = {d: _scripts(d, seed, objects) for d in DIALECTS}
    report: dict[str, Any] = {
        "engine": engine,
        "size": size,
        "objects": objects,
        "steps": steps,
        "cpus": os.cpu_count(),
    }
    # Script indices never repeat within the run: every compile is of a new script.
    start = 2
    for dialect in DIALECTS:
        report[dialect] = _dialect(service, scripts[dialect], steps, start)
        start += steps + 2
        progress(f"{dialect}: {report[dialect]['outside_render_ms']:.2f} ms outside the render")
    report["render_free_steps_per_s"] = {}
    report["render_free_steps_per_cpu_s"] = {}
    for dialect in ("dsl", "bpy"):
        rate = _render_free(service, scripts[dialect], steps, start + 1)
        start += steps + 1
        report["render_free_steps_per_s"][dialect] = rate["steps_per_s"]
        report["render_free_steps_per_cpu_s"][dialect] = rate["steps_per_cpu_s"]
        progress(f"render-free {dialect}: {rate['steps_per_s']:.1f} steps/s")
    if masks_steps > 0:
        report["masks_ms"] = _masks(service, scripts["dsl"], masks_steps, start)
    report["check_split_cpu"] = _check_split(service.built_frame, spec)
    report["load_average"] = {"before": load_before, "after": os.getloadavg()}
    return report


def format_report(report: dict[str, Any]) -> str:
    load = report["load_average"]
    lines = [
        f"derender bench step: {report['engine']} {report['size']} px, {report['objects']} "
        f"objects, {report['steps']} new scripts per dialect, {report['cpus']} CPUs, load "
        f"{load['before'][0]:.2f} -> {load['after'][0]:.2f}",
        "CPU ms per step outside the render (median, p99); render wall ms; stages CPU ms:",
    ]
    for dialect in DIALECTS:
        r = report[dialect]
        ratio = r["outside_over_render"]
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages_cpu_ms"].items())
        lines.append(
            f"  {dialect:13} {r['outside_render_ms']:7.2f} {r['outside_render_p99_ms']:7.2f}"
            f"  (wall {r['outside_render_wall_ms']:.2f})  render {r['render_ms']:6.2f}"
            f"  outside/render {'-' if ratio is None else f'{ratio:.2f}'}  [{r['outcome']}]"
        )
        lines.append(f"           {stages}")
    free, free_cpu = report["render_free_steps_per_s"], report["render_free_steps_per_cpu_s"]
    lines.append(
        "render-free steps/s (wall; per CPU second): "
        + ", ".join(f"{d} {free[d]:.1f} ({free_cpu[d]:.1f})" for d in free)
    )
    if "masks_ms" in report:
        lines.append(f"masks pass (when asked), wall ms: {report['masks_ms']:.2f}")
    split = report["check_split_cpu"]
    lines.append(
        f"of the check (verify), CPU ms: the frame's snapshots {split['frame_ms']:.2f}, "
        f"all {split['assets']} cached assets' {split['assets_ms']:.2f} (a render: those it uses)"
    )
    return "\n".join(lines)


def _logged_to(log: Path, run: Callable[[Callable[[str], None]], dict[str, Any]]) -> dict:
    """``run(say)`` with this process's stdout and stderr (Blender's log: a line per render,
    its GL and CUDA probes) written to ``log``, a new one per run: the terminal gets
    ``say``'s progress lines on stderr, and stdout the report only."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(2), "w", buffering=1)
    print(f"derender bench step: Blender's log goes to {log}", file=terminal)
    started = time.perf_counter()

    def say(line: str) -> None:
        print(f"  [{time.perf_counter() - started:6.1f} s] {line}", file=terminal)

    with open(log, "wb") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            return run(say)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            ctypes.CDLL(None).fflush(None)  # Blender's own buffered writes, before the switch
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            terminal.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="derender bench step", description=__doc__.split("\n")[0])
    p.add_argument("--engine", choices=ENGINES, default="workbench", help="default workbench")
    p.add_argument("--size", type=int, default=128, help="render width and height (default 128)")
    p.add_argument("--objects", type=int, default=10, help="objects per scene (default 10)")
    p.add_argument("--steps", type=int, default=40, help="timed steps per dialect (default 40)")
    p.add_argument(
        "--masks-steps", type=int, default=5, help="DSL steps with masks, timed apart (default 5)"
    )
    p.add_argument("--seed", type=int, default=0, help="scene stream seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON only")
    args = p.parse_args(argv)
    if args.size < 16 or args.objects < 1 or args.steps < 2 or args.masks_steps < 0:
        print(
            "derender bench step: --size >= 16, --objects >= 1, --steps >= 2, --masks-steps >= 0",
            file=sys.stderr,
        )
        return 2
    log = Path(tempfile.gettempdir()) / f"derender-bench-step-{os.getuid()}.log"
    try:
        report = _logged_to(log, lambda say: measure(
            args.engine, args.size, args.objects, args.steps, args.masks_steps, args.seed, say
        ))  # fmt: skip
    except Exception:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        print("\n".join(["derender bench step failed; the end of Blender's log:", *tail]),
              file=sys.stderr)  # fmt: skip
        raise
    print(json.dumps(report) if args.json else format_report(report))
    return 0
