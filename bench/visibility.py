"""What CLEVR's visibility rule costs a target pipeline, in one warm Blender process.

For ``--targets`` seeded targets in each frame it times (wall and process CPU) making the
target as a trusted worker does without the rule (generate + render image + masks) and
with it (``generate_scene(..., visible=render.visibility_check(built_frame, spec))``, then
the same render), and counts the candidates the rule rejected. The ratio of the two is the
throughput cost; it is within one run, so the machine's load affects both alike.

    .venv/bin/python bench/visibility.py [--targets 200] [--frames clevr-rl 480x320]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import replace

from derender.addon import build, render
from derender.addon.frame import BuiltFrame
from derender.scenes import GeneratorConfig, generate_scene
from derender.scenes.frame import FrameSpec, preset


def _frame(name: str) -> FrameSpec:
    if name in ("clevr", "clevr-rl"):
        return (
            preset(name, gpu=False)
            if name == "clevr-rl"
            else replace(FrameSpec(), engine="workbench", samples=8)
        )
    w, _, h = name.partition("x")
    return FrameSpec(width=int(w), height=int(h or w), engine="workbench", samples=8)


def run(spec: FrameSpec, targets: int, seed: int) -> dict[str, float]:
    config = GeneratorConfig(frame=spec)
    built_frame = BuiltFrame(spec)
    check = render.visibility_check(built_frame, spec)
    calls = 0

    def counted(scene):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return check(scene)

    def target(visible) -> None:  # type: ignore[no-untyped-def]
        for i in range(targets):
            scene = generate_scene(seed, i, config, visible=visible)
            built_frame.reset(spec)
            objects = build.build(scene)
            render.render_image(spec)
            render.render_masks(objects, spec)
        built_frame.reset(spec)

    render.render_image(spec)  # warm-up
    out: dict[str, float] = {}
    for label, visible in (("without", None), ("with", counted)):
        t, c = time.perf_counter(), time.process_time()
        target(visible)
        out[f"{label}_ms"] = (time.perf_counter() - t) * 1000 / targets
        out[f"{label}_cpu_ms"] = (time.process_time() - c) * 1000 / targets
    out["rejected_per_target"] = (calls - targets) / targets
    out["threshold_px"] = spec.min_pixels_per_object()
    return out


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--targets", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--frames", nargs="+", default=["clevr-rl", "480x320"])
    args = p.parse_args(argv)
    for name in args.frames:
        spec = _frame(name)
        r = run(spec, args.targets, args.seed)
        ratio = r["with_cpu_ms"] / r["without_cpu_ms"]
        print(
            f"{name} ({spec.width}x{spec.height} {spec.engine}, threshold {r['threshold_px']} px): "
            f"{r['without_ms']:.1f} -> {r['with_ms']:.1f} ms/target wall, "
            f"{r['without_cpu_ms']:.1f} -> {r['with_cpu_ms']:.1f} ms cpu (x{ratio:.2f}); "
            f"{r['rejected_per_target']:.3f} rejected candidates per target",
            flush=True,
        )


if __name__ == "__main__":
    main()
