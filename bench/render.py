"""Render throughput in one warm Blender process, per engine and size, with the cost split.

For each (engine, size) it renders ``--scenes`` generated scenes (after one discarded
warm-up render) and times each stage of a request: reset to the frame, build the scene,
render_image (of which: Blender's render alone, measured separately with a plain
``bpy.ops.render.render()``; the rest is readback = PNG write + decode; decoding the
same pixels as an uncompressed PNG is also timed alone), and the mask pass. renders/s
counts reset + build + render_image; "cpu" is the process CPU time of those three
(steadier than wall time on a shared machine).
``--readback`` also compares the image formats Blender can write for the readback (the
compositor's Viewer node is not evaluated headless, so a file in tmpfs is the only pixel
path).

    .venv/bin/python bench/render.py [--engines workbench cycles eevee]
        [--sizes 64 128 320x240] [--scenes 10] [--samples eevee=4 cycles=16 workbench=8]
        [--readback] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import bpy
import numpy as np
from derender.addon import build, compat, render
from derender.addon.frame import BuiltFrame
from derender.scenes.frame import FrameSpec
from derender.scenes.generator import generate_scene
from PIL import Image

DEFAULT_SAMPLES = {"eevee": 4, "cycles": 16, "workbench": 8}


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h or w)


def _ms(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000.0


def bench_config(spec: FrameSpec, scenes: int, seed: int) -> dict[str, float]:
    """Median milliseconds per stage for ``scenes`` scenes in ``spec``'s frame."""
    built_frame = BuiltFrame(spec)
    render.render_image(spec)  # warm-up: first render compiles shaders / builds kernels
    stages: dict[str, list[float]] = {}

    def lap(stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        result = fn(*args)
        stages.setdefault(stage, []).append((time.perf_counter() - t) * 1000.0)
        stages.setdefault(stage + "_cpu", []).append((time.process_time() - c) * 1000.0)
        return result

    for i in range(scenes):
        scene = generate_scene(seed, i)
        lap("reset", built_frame.reset, spec)
        objects = lap("build", build.build, scene)
        image = lap("render_image", render.render_image, spec)
        png = io.BytesIO()  # the same pixels as an uncompressed PNG, as Blender writes it
        Image.fromarray(image).save(png, format="PNG", compress_level=0)
        lap("decode", lambda data=png: np.asarray(Image.open(data).convert("RGB")))
        lap("render_only", bpy.ops.render.render)
        lap("masks", render.render_masks, objects, spec)
    built_frame.reset(spec)
    out = {k: statistics.median(v) for k, v in stages.items()}
    # readback = what render_image costs beyond Blender's own render (PNG write + decode)
    out["readback"] = out["render_image"] - out["render_only"]
    per_request = out["reset"] + out["build"] + out["render_image"]
    out["renders_per_s"] = 1000.0 / per_request
    out["cpu_per_request"] = out["reset_cpu"] + out["build_cpu"] + out["render_image_cpu"]
    return out


def bench_readback(spec: FrameSpec, repeats: int) -> dict[str, float]:
    """Median ms of render + write + decode per file format (Workbench, one scene)."""
    built_frame = BuiltFrame(spec)
    build.build(generate_scene(0, 0))
    scene = cast(bpy.types.Scene, bpy.context.scene)
    settings = scene.render.image_settings
    base = scene.render.filepath.rsplit(".", 1)[0]
    results: dict[str, float] = {
        "no_readback": statistics.median(_ms(bpy.ops.render.render) for _ in range(repeats))
    }
    reference = None
    for label, fmt, ext, compression in (
        ("png_c0", "PNG", "png", 0), ("png_c15", "PNG", "png", 15),
        ("bmp", "BMP", "bmp", None), ("tga_raw", "TARGA_RAW", "tga", None),
    ):  # fmt: skip
        settings.file_format = fmt  # type: ignore[assignment]  # a format id from the table
        if compression is not None:
            settings.compression = compression
        scene.render.filepath = f"{base}.{ext}"

        def once(ext: str = ext) -> np.ndarray:
            bpy.ops.render.render(write_still=True)
            with Image.open(f"{base}.{ext}") as im:
                return np.asarray(im.convert("RGB"))

        results[label] = statistics.median(_ms(once) for _ in range(repeats))
        pixels = once()
        reference = pixels if reference is None else reference
        if not np.array_equal(pixels, reference):
            raise AssertionError(f"{label} read back different pixels than png_c0")
        os.remove(f"{base}.{ext}")
    built_frame.reset(spec)  # re-applies the frame's own output settings
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", nargs="+", default=["workbench", "cycles", "eevee"])
    parser.add_argument("--sizes", nargs="+", default=["64", "128", "320x240"])
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", nargs="*", default=[], metavar="ENGINE=N")
    parser.add_argument("--readback", action="store_true", help="compare readback formats")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    samples = DEFAULT_SAMPLES | {k: int(v) for k, v in (s.split("=") for s in args.samples)}

    rows = []
    device = compat.cycles_device() if "cycles" in args.engines else "-"
    print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; Cycles device "
        f"{device}; median ms per request stage (wall), cpu = process CPU ms per request"
    )
    print(
        f"{'engine':9} {'spp':>3} {'size':>7} {'rend/s':>7} {'reset':>6} {'build':>6} "
        f"{'render':>7} {'readbk':>6} {'decode':>6} {'masks':>6} {'cpu':>7}"
    )
    for engine in args.engines:
        for text in args.sizes:
            w, h = _size(text)
            spec = FrameSpec(width=w, height=h, engine=engine, samples=samples[engine])
            r = bench_config(spec, args.scenes, args.seed)
            rows.append({"engine": engine, "samples": spec.samples, "size": f"{w}x{h}", **r})
            print(
                f"{engine:9} {spec.samples:3d} {w:>3}x{h:<3} {r['renders_per_s']:7.2f} "
                f"{r['reset']:6.1f} {r['build']:6.1f} {r['render_only']:7.1f} "
                f"{r['readback']:6.1f} {r['decode']:6.1f} {r['masks']:6.1f} "
                f"{r['cpu_per_request']:7.1f}",
                flush=True,
            )
    result: dict[str, object] = {"configs": rows, "blender": bpy.app.version_string}
    if args.readback:
        result["readback_ms"] = {}
        for text in args.sizes:
            w, h = _size(text)
            spec = FrameSpec(width=w, height=h, engine="workbench", samples=8)
            rb = bench_readback(spec, max(5, args.scenes))
            result["readback_ms"][f"{w}x{h}"] = rb  # type: ignore[index]
            print(
                f"readback workbench {w}x{h}: "
                + ", ".join(f"{k} {v:.1f}" for k, v in rb.items())
                + " ms"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
