"""``derender render``: render a CLEVR scene file (or a contact sheet of random scenes).

The frame is a preset (``--frame clevr``: CLEVR v1.0, 480x320; ``clevr-rl``: the fast RL
frame) with ``--engine``, ``--size WxH`` and ``--samples`` on top. A scene that carries
its own camera and lights (``frame_pose``: a jittered target) renders from them;
``--fit-camera`` recovers a CLEVR scene's jittered camera from its ``pixel_coords``. The
exact frame of every render is written next to it as ``OUT.frame.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..scenes.frame import FrameSpec
from .options import add_frame_options, frame_from_args

if TYPE_CHECKING:
    from PIL import Image

    from ..scenes.model import Scene


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render a CLEVR scene JSON file with Blender")
    p.add_argument("scene", type=Path, nargs="?", help="CLEVR scene JSON (one scene)")
    p.add_argument("--out", type=Path, required=True, help="output PNG")
    add_frame_options(p)
    p.add_argument("--masks", action="store_true", help="also write OUT.masks.png (ids)")
    p.add_argument(
        "--fit-camera",
        action="store_true",
        help="render from the camera CLEVR used (recovered from the scene's pixel_coords, "
        "which CLEVR v1.0 gives at 480x320)",
    )
    p.add_argument("--sheet", type=int, metavar="N", help="contact sheet of N random scenes")
    p.add_argument("--seed", type=int, default=0, help="scene stream seed for --sheet")
    p.add_argument("--jitter", action="store_true", help="--sheet: CLEVR's camera and light jitter")
    p.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"derender render: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from ..scenes.clevr_json import scene_from_json, with_fitted_camera

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
    try:
        spec = frame_from_args(args)
        if scene is not None and args.fit_camera:  # CLEVR v1.0's pixel_coords are 480x320
            scene = with_fitted_camera(scene, spec.with_size(480, 320))
    except ValueError as exc:
        return _fail(str(exc))
    return _sheet(spec, args) if scene is None else _render_one(spec, scene, args)


def _render_one(spec: FrameSpec, scene: Scene, args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from ..addon import build, render
    from ..addon.frame import BuiltFrame

    posed = spec.posed(scene.extra)
    built_frame = BuiltFrame(posed)
    objects = build.build(scene)
    image = render.render_image(posed)
    _save(Image.fromarray(image), args.out)
    _write_frame(posed, args.out)
    print(f"wrote {args.out} ({posed.engine}, {posed.width}x{posed.height}, {len(scene)} objects)")
    if args.masks:
        masks = render.render_masks(objects, posed)
        path = args.out.with_suffix(".masks.png")
        # ids spread over the byte range so the mask is visible; value = id * step
        step = max(1, 255 // max(1, len(objects)))
        _save(Image.fromarray((masks * step).astype(np.uint8)), path)
        print(f"wrote {path} (object i has value {step} * i, background 0)")
    built_frame.reset(spec)
    return 0


def _sheet(spec: FrameSpec, args: argparse.Namespace) -> int:
    import math

    from PIL import Image

    from ..addon import build, render
    from ..addon.frame import BuiltFrame
    from ..scenes.generator import GeneratorConfig, generate_scene

    config = GeneratorConfig(frame=spec, jitter=args.jitter)
    built_frame = BuiltFrame(spec)
    check = render.visibility_check(built_frame, config.frame)
    cols = math.ceil(math.sqrt(args.sheet))
    rows = math.ceil(args.sheet / cols)
    sheet = Image.new("RGB", (cols * spec.width, rows * spec.height))
    poses = []
    for i in range(args.sheet):
        scene = generate_scene(args.seed, i, config, visible=check)
        posed = spec.posed(scene.extra)
        built_frame.reset(posed)
        build.build(scene)
        tile = Image.fromarray(render.render_image(posed))
        sheet.paste(tile, ((i % cols) * spec.width, (i // cols) * spec.height))
        poses.append(posed.pose())
    built_frame.reset(spec)
    _save(sheet, args.out)
    _write_frame(spec, args.out, poses if args.jitter else None)
    print(
        f"wrote {args.out}: {args.sheet} scenes (seed {args.seed}, {spec.engine}) "
        f"in a {cols}x{rows} grid"
    )
    return 0


def _write_frame(spec: FrameSpec, out: Path, poses: list | None = None) -> None:
    """``OUT.frame.json``: the exact frame (and each tile's camera and lights)."""
    data = {"frame": spec.to_dict(), "frame_hash": spec.hash()}
    if poses is not None:
        data["poses"] = poses
    out.with_suffix(".frame.json").write_text(json.dumps(data, indent=2) + "\n")


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
