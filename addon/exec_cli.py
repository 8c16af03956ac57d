"""``derender exec``: run one agent script through the sandbox in this (fresh) process."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..scenes.frame import ENGINES, FrameSpec

if TYPE_CHECKING:
    from ..reward import RewardSpec
    from ..scenes.model import Scene
    from .sandbox.limits import Limits
    from .service import StepResult


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exec", help="run an agent script in the sandbox and render it")
    p.add_argument("script", type=Path, help="the agent script (.py, bpy or CLEVR DSL)")
    p.add_argument("--out", type=Path, required=True, help="where to write the render (PNG)")
    p.add_argument("--target", type=Path, help="CLEVR scene JSON to compare against")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--engine", choices=ENGINES, default="workbench")
    p.add_argument("--size", type=int, default=128, help="square image size (default 128)")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seed", type=int, default=0, help="seed of the script's `random`")
    p.add_argument("--deadline", type=float, default=5.0, help="script deadline in seconds")
    p.add_argument("--preset", default="seed", help="reward preset with --target (default seed)")
    p.set_defaults(func=run)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send fd 1 to stderr meanwhile: Blender logs renders on stdout at the C level, and
    ``--json`` promises stdout holds exactly one JSON object."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _usage(message: str) -> int:
    print(f"derender exec: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Exit 0 whatever the script did; 2 for usage errors (missing file, bad option)."""
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
    try:
        from ..reward import preset

        reward_spec = preset(args.preset)
    except ValueError as exc:
        return _usage(str(exc))
    try:
        spec = FrameSpec(
            width=args.size, height=args.size, engine=args.engine, samples=args.samples
        )
        from .sandbox.limits import Limits

        limits = Limits(deadline_s=args.deadline)
    except ValueError as exc:
        return _usage(str(exc))
    if not args.out.parent.is_dir():
        return _usage(f"output directory {args.out.parent} does not exist")

    with _stdout_to_stderr():
        report, result = _run(args, spec, limits, script, target, reward_spec)
    if args.json:
        print(json.dumps(report))
    else:
        where = f" -> {report['out']}" if report["out"] else ""
        line = f" (line {result.line})" if result.line else ""
        print(f"{result.outcome}{line}{where}")
        if result.message:
            print(result.message)
        if report.get("reward") is not None:
            parts = ", ".join(f"{k} {v:.4f}" for k, v in report["components"].items())
            print(f"reward {report['reward']:.4f} ({args.preset}: {parts})")
        if result.stdout:
            print("--- script output ---")
            print(result.stdout, end="" if result.stdout.endswith("\n") else "\n")
    return 0


def _run(
    args: argparse.Namespace,
    spec: FrameSpec,
    limits: Limits,
    script: str,
    target: Scene | None,
    reward_spec: RewardSpec,
) -> tuple[dict[str, Any], StepResult]:
    """Build the frame, run the script, write the PNGs; the report and the result."""
    import bpy
    from PIL import Image

    from .service import Service

    bpy.ops.wm.read_factory_settings(use_empty=True)
    service = Service(spec, limits)
    result = service.step(script, seed=args.seed, masks=target is not None)
    report: dict[str, Any] = {
        "outcome": result.outcome,
        "message": result.message,
        "line": result.line,
        "stdout": result.stdout,
        "recycle": result.recycle,
        "timings": {k: round(v, 6) for k, v in result.timings.items()},
        "frame": spec.hash(),
        "out": None,
    }
    if result.image is not None:
        Image.fromarray(result.image).save(args.out)
        report["out"] = str(args.out)
    if result.readback is not None:
        from ..scenes.clevr_json import scene_to_clevr

        report["readback"] = scene_to_clevr(result.readback)
        report["unmapped"] = result.unmapped
    if target is not None:
        from ..reward import score

        rendered = service.render_scene(target, masks=True)
        target_png = args.out.with_name(args.out.stem + ".target.png")
        Image.fromarray(rendered.image).save(target_png)
        report["target_out"] = str(target_png)
        scored = score(
            result.image,
            rendered.image,
            spec=reward_spec,
            outcome=result.outcome,
            render_masks=result.masks,
            target_masks=rendered.masks,
            scene=result.readback,
            target_scene=target,
            code=script,
        )
        report.update(
            reward=scored.reward,
            components=dict(scored.components),
            unavailable=list(scored.unavailable),
            spec_hash=scored.spec_hash,
        )
    return report, result
