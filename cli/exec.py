"""``derender exec``: run one agent script through the farm's path, in disposable workers.

This process holds the target and scores the reward; the script runs in a fresh step
worker of a local farm (a headless Blender in the OS sandbox) that never sees the
target, and the target is rendered by a target worker of the same farm. So ``exec``
gives the reward that ``derender serve`` and ``derender farm`` give for the same script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..protocol.messages import ENVS
from ..reward.spec import DEFAULT_PRESET, SVG_DEFAULT_PRESET
from .options import add_frame_options, add_hard_deadline_option, farm_frame

if TYPE_CHECKING:
    from ..protocol.results import StepResult
    from ..scenes.model import Scene


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exec", help="run an agent script in the sandbox and render it")
    p.add_argument("script", type=Path, help="the agent script (.py, bpy or CLEVR DSL; .svg)")
    p.add_argument(
        "--env", choices=ENVS, default="clevr",
        help="clevr (a bpy script, Blender workers) or svg (an SVG document, an SVG worker)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, help="where to write the render (PNG; clevr: required)")
    p.add_argument(
        "--target", type=Path, help="CLEVR scene JSON (env svg: an SVG document) to compare against"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_frame_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the script's `random`")
    p.add_argument("--deadline", type=float, default=5.0, help="script deadline in seconds")
    add_hard_deadline_option(p)
    p.add_argument(
        "--preset",
        help=f"reward preset (default {DEFAULT_PRESET}; env svg: {SVG_DEFAULT_PRESET})",
    )
    p.set_defaults(func=run)


def _usage(message: str) -> int:
    print(f"derender exec: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Exit 0 whatever the script did; 2 for usage errors (missing file, bad option); 1
    when the farm cannot run it (no worker started)."""
    from ..farm.config import FarmConfig
    from ..reward import PRESETS

    if args.env == "svg":
        return _run_svg(args)
    args.preset = args.preset or DEFAULT_PRESET
    if args.out is None:
        return _usage("--out is required: where to write the render")
    try:
        script = args.script.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _usage(f"cannot read {args.script}: {exc}")
    target = None
    if args.target is not None:
        from ..scenes.clevr_json import scene_from_json

        try:
            target = scene_from_json(args.target.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError) as exc:
            return _usage(f"cannot read target scene {args.target}: {exc}")
    if args.preset not in PRESETS:
        return _usage(f"unknown preset {args.preset!r}; known: {sorted(PRESETS)}")
    if not args.out.parent.is_dir():
        return _usage(f"output directory {args.out.parent} does not exist")
    try:
        config = FarmConfig(
            workers=1,
            **farm_frame(args),
            sandbox_deadline=args.deadline,
            preset=args.preset,
            metrics_interval=0,
            **({} if args.hard_deadline is None else {"hard_deadline": args.hard_deadline}),
        )
        config.frame()
    except ValueError as exc:
        return _usage(str(exc))
    try:
        report, result = _run(config, args, script, target)
    except (RuntimeError, TimeoutError) as exc:
        print(f"derender exec: the local farm could not run the script: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        _print_report(report, result, args.preset)
    return 0


def _run(
    config: Any, args: argparse.Namespace, script: str, target: Scene | None
) -> tuple[dict[str, Any], StepResult]:
    """Start a farm of one, run the script against the target (or the empty frame),
    write the PNGs; the report and the result."""
    from PIL import Image

    from ..farm.local import LocalFarm
    from ..protocol.client import Client
    from ..scenes.clevr_json import scene_to_clevr
    from ..scenes.model import Scene

    with LocalFarm(**config.to_dict()) as farm, Client(farm.address, timeout=600) as client:
        made = client.reset(scene=target if target is not None else Scene(()), masks=False)
        result = client.step(script, made, seed=args.seed, preset=args.preset)
    report: dict[str, Any] = {
        "outcome": result.outcome,
        "message": result.message,
        "line": result.line,
        "stdout": result.stdout,
        "timings": {k: round(v, 6) for k, v in result.timings.items()},
        "frame": result.frame_hash,
        "out": None,
    }
    if result.image is not None:
        Image.fromarray(result.image).save(args.out)
        report["out"] = str(args.out)
    if result.scene is not None:
        report["readback"] = scene_to_clevr(result.scene)
        report["unmapped"] = result.unmapped
    if target is not None:
        target_png = args.out.with_name(args.out.stem + ".target.png")
        Image.fromarray(made.image).save(target_png)
        report.update(
            target_out=str(target_png),
            reward=result.reward,
            components=dict(result.components),
            unavailable=list(result.unavailable),
            spec_hash=result.spec_hash,
        )
    return report, result


def _print_report(report: dict[str, Any], result: StepResult, preset: str) -> None:
    where = f" -> {report['out']}" if report["out"] else ""
    line = f" (line {result.line})" if result.line else ""
    print(f"{result.outcome}{line}{where}")
    if result.message:
        print(result.message)
    if report.get("reward") is not None:
        parts = ", ".join(f"{k} {v:.4f}" for k, v in report["components"].items())
        print(f"reward {report['reward']:.4f} ({preset}: {parts})")
    if result.stdout:
        print("--- script output ---")
        print(result.stdout, end="" if result.stdout.endswith("\n") else "\n")


def _run_svg(args: argparse.Namespace) -> int:
    """``--env svg``: the document runs in the SVG worker of an SVG-only local farm (no
    Blender), the target renders in that farm's broker; prints the same report."""
    from ..farm.config import FarmConfig
    from ..farm.local import LocalFarm
    from ..protocol.client import Client
    from ..protocol.errors import BadRequest
    from ..reward import PRESETS

    preset = args.preset or SVG_DEFAULT_PRESET
    if preset not in PRESETS:
        return _usage(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    try:  # bytes as they are: malformed UTF-8 is the document's syntax_error, not ours
        document = args.script.read_bytes().decode("utf-8", "surrogateescape")
        target = None if args.target is None else args.target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _usage(f"cannot read {exc}")
    if args.out is not None and not args.out.parent.is_dir():
        return _usage(f"output directory {args.out.parent} does not exist")
    config = FarmConfig(
        workers=0, target_workers=0, svg_workers=1, preset=preset, metrics_interval=0
    )
    empty = '<svg xmlns="http://www.w3.org/2000/svg"/>'
    try:
        with LocalFarm(**config.to_dict()) as farm, Client(farm.address, timeout=600) as client:
            made = client.reset(svg=empty if target is None else target, masks=False)
            result = client.step(document, made, preset=preset)
    except BadRequest as exc:
        return _usage(exc.message)
    except (RuntimeError, TimeoutError) as exc:
        print(f"derender exec: the local farm could not run the document: {exc}", file=sys.stderr)
        return 1
    report: dict[str, Any] = {
        "outcome": result.outcome,
        "message": result.message,
        "env": "svg",
        "timings": {k: round(v, 6) for k, v in result.timings.items()},
        "frame": result.frame_hash,
        "out": None,
    }
    if result.image is not None and args.out is not None:
        from PIL import Image

        Image.fromarray(result.image).save(args.out)
        report["out"] = str(args.out)
    if target is not None:
        report.update(
            target_id=made.target_id,
            reward=result.reward,
            # JSON has no NaN: a component this machine cannot compute is null
            components={k: None if v != v else v for k, v in result.components.items()},
            unavailable=list(result.unavailable),
            spec_hash=result.spec_hash,
        )
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        _print_report(report, result, preset)
    return 0
