"""``derender scenes``: write a seeded CLEVR scene set with both ground-truth programs.

Pure Python, no renderer: CLEVR's visibility rule needs renders and is applied where
targets are rendered (``derender render --sheet``, ``derender dataset``, the farm)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..scenes.clevr_json import dump_scenes
from ..scenes.generator import GeneratorConfig, generate_scenes
from ..scenes.programs import bpy_program, dsl_program


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scenes", help="generate seeded CLEVR scenes and their programs")
    p.add_argument("--seed", type=int, default=0, help="stream seed (default 0)")
    p.add_argument("--count", type=int, default=10, help="number of scenes (default 10)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--min-objects", type=int, default=GeneratorConfig.min_objects)
    p.add_argument("--max-objects", type=int, default=GeneratorConfig.max_objects)
    p.add_argument(
        "--jitter", action="store_true", help="CLEVR's camera and light jitter (in frame_pose)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.count < 1:
        print(f"derender scenes: --count must be >= 1, got {args.count}", file=sys.stderr)
        return 2
    try:
        cfg = GeneratorConfig(
            min_objects=args.min_objects, max_objects=args.max_objects, jitter=args.jitter
        )
    except ValueError as exc:
        print(f"derender scenes: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    scenes = []
    for i, scene in enumerate(generate_scenes(args.seed, args.count, cfg)):
        scenes.append(scene)
        (args.out / f"{i:06d}.dsl.py").write_text(dsl_program(scene))
        (args.out / f"{i:06d}.bpy.py").write_text(bpy_program(scene))
    info = {"generator": "derender", "seed": args.seed, "count": args.count, "jitter": args.jitter}
    dump_scenes(scenes, args.out / "scenes.json", info=info)
    print(f"wrote {len(scenes)} scenes to {args.out}/scenes.json (+ .dsl.py / .bpy.py)")
    return 0
