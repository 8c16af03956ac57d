"""Sandbox overhead: a 10-object script through the sandbox vs. the same bpy work unguarded.

For the DSL dialect the unguarded baseline is ``addon.build.add_object`` called directly
with the same arguments; for the bpy dialect it is the same program ``exec``'d with the
real ``bpy``. Overhead = median(sandboxed) - median(baseline), per script: "cold" compiles
the script every run (parse + RestrictedPython + guard injection, also reported on its
own), "warm" reuses the compiled code (the policy caches it by source). The scene
is reset between runs (not timed). Also reports ``Service.step``'s own stages.
Wall time on a shared machine: compare runs on the same host.

    .venv/bin/python bench/sandbox.py [--repeat 30] [--objects 10]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable, Sequence

import bpy
from derender.addon.build import add_object
from derender.addon.frame import build_frame, reset
from derender.addon.sandbox import policy
from derender.addon.sandbox.limits import Limits
from derender.addon.sandbox.runner import run_script
from derender.addon.service import Service
from derender.scenes.frame import FrameSpec
from derender.scenes.generator import GeneratorConfig, generate_scene
from derender.scenes.programs import bpy_program, dsl_program

SPEC = FrameSpec(width=64, height=64, engine="workbench", samples=8)


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        reset(SPEC)
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    reset(SPEC)
    return 1000 * statistics.median(times)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--objects", type=int, default=10)
    args = parser.parse_args(argv)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    build_frame(SPEC)
    cfg = GeneratorConfig(min_objects=args.objects, max_objects=args.objects)
    scene = generate_scene(0, 0, cfg)
    limits = Limits()
    dsl, bpy_src = dsl_program(scene), bpy_program(scene)
    for src in (dsl, bpy_src):  # warm caches (assets, operators) once
        assert run_script(src, limits)[0].outcome == "ok"
        reset(SPEC)

    def trusted_dsl() -> None:
        for o in scene.objects:
            add_object(o.shape, o.size, o.material, o.color, o.x, o.y, o.rotation)

    plain_bpy = compile(bpy_src, "<plain>", "exec")

    def cold(src: str) -> None:
        policy._compile.cache_clear()
        run_script(src, limits)

    rows = [("dsl", dsl, trusted_dsl), ("bpy", bpy_src, lambda: exec(plain_bpy, {}))]
    print(f"{args.objects} objects, median of {args.repeat} runs (ms)")
    head = ("dialect", "unguarded", "cold", "warm", "ovh cold", "ovh warm", "compile")
    print(f"{head[0]:8}" + "".join(f"{h:>10}" for h in head[1:]))
    for name, src, baseline in rows:
        b = _median_ms(baseline, args.repeat)
        c = _median_ms(functools.partial(cold, src), args.repeat)
        w = _median_ms(functools.partial(run_script, src, limits), args.repeat)
        p = _median_ms(functools.partial(policy._compile.__wrapped__, src), args.repeat)
        print(f"{name:8}" + "".join(f"{v:10.2f}" for v in (b, c, w, c - b, w - b, p)))

    service = Service(SPEC, limits)
    stages: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        result = service.step(dsl, masks=True)
        for key, value in result.timings.items():
            stages.setdefault(key, []).append(1000 * value)
    print("Service.step (dsl, masks) stages, median ms: " + ", ".join(
        f"{k} {statistics.median(v):.2f}" for k, v in stages.items()
    ))  # fmt: skip


if __name__ == "__main__":
    main()
