"""``derender render``: render a CLEVR scene file (or a contact sheet of random scenes)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..scenes.frame import ENGINES, FrameSpec
from ..scenes.model import Scene

if TYPE_CHECKING:
    from PIL import Image

_DEFAULT_SAMPLES = {"eevee": 16, "workbench": 8, "cycles": 32}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a CLEVR scene JSON file with Blender")
    p.add_argument("scene", type=Path, nargs="?", help="CLEVR scene JSON (one scene)")
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    p.add_argument(
        "--engine", choices=ENGINES, help="default: eevee where a GPU is present, else workbench"
    )
    p.add_argument("--size", type=int, default=128, help="width and height in pixels")
    p.add_argument("--samples", type=int, help="render samples (default per engine)")
    p.add_argument("--masks", action="store_true", help="also write OUT.masks.png (ids)")
    p.add_argument("--sheet", type=int, metavar="N", help="contact sheet of N random scenes")
    p.add_argument("--seed", type=int, default=0, help="scene stream seed for --sheet")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"derender render: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from ..scenes.clevr_json import scene_from_json

    if (args.scene is None) == (args.sheet is None):
        return _fail("give either a SCENE.json or --sheet N")
    if args.sheet is not None and not 1 <= args.sheet <= 256:
        return _fail(f"--sheet must be in 1..256, got {args.sheet}")
    scene = None
    if args.scene is not None:  # bad input fails before Blender is even imported
        try:
            scene = scene_from_json(args.scene.read_text())
        except OSError as exc:
            return _fail(f"cannot read {args.scene}: {exc.strerror or exc}")
        except (ValueError, json.JSONDecodeError) as exc:
            return _fail(f"{args.scene} is not a CLEVR scene: {exc}")
    if args.engine is None:  # EEVEE through software GL takes tens of seconds a frame
        from . import compat

        args.engine = "eevee" if compat.cycles_device() == "GPU" else "workbench"
    try:
        samples = args.samples or _DEFAULT_SAMPLES[args.engine]
        spec = FrameSpec(width=args.size, height=args.size, engine=args.engine, samples=samples)
    except ValueError as exc:
        return _fail(str(exc))
    return _sheet(spec, args) if scene is None else _render_one(spec, scene, args)


def _render_one(spec: FrameSpec, scene: Scene, args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from . import build, frame, render

    frame.reset(spec)
    objects = build.build(scene)
    image = render.render_image(spec)
    _save(Image.fromarray(image), args.out)
    print(f"wrote {args.out} ({spec.engine}, {spec.width}x{spec.height}, {len(scene)} objects)")
    if args.masks:
        masks = render.render_masks(objects, spec)
        path = args.out.with_suffix(".masks.png")
        # ids spread over the byte range so the mask is visible; value = id * step
        step = max(1, 255 // max(1, len(objects)))
        _save(Image.fromarray((masks * step).astype(np.uint8)), path)
        print(f"wrote {path} (object i has value {step} * i, background 0)")
    frame.reset(spec)
    return 0


def _sheet(spec: FrameSpec, args: argparse.Namespace) -> int:
    import math

    from PIL import Image

    from ..scenes.generator import GeneratorConfig, generate_scene
    from . import build, frame, render

    config = GeneratorConfig(frame=spec)
    check = render.visibility_check(config.frame)
    cols = math.ceil(math.sqrt(args.sheet))
    rows = math.ceil(args.sheet / cols)
    sheet = Image.new("RGB", (cols * spec.width, rows * spec.height))
    for i in range(args.sheet):
        scene = generate_scene(args.seed, i, config, visible=check)
        frame.reset(spec)
        build.build(scene)
        tile = Image.fromarray(render.render_image(spec))
        sheet.paste(tile, ((i % cols) * spec.width, (i // cols) * spec.height))
    frame.reset(spec)
    _save(sheet, args.out)
    print(
        f"wrote {args.out}: {args.sheet} scenes (seed {args.seed}, {spec.engine}) "
        f"in a {cols}x{rows} grid"
    )
    return 0


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
