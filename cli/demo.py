"""``derender demo`` (what ``make demo`` runs): baseline agents on an embedded farm."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..jobs.demo import DemoConfig  # light: the demo imports zmq and the reward inside functions
from .options import add_frame_options, farm_frame


def _budgets(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"budgets must be like 32,128,512, got {text!r}") from None
    return values


def register(sub: argparse._SubParsersAction) -> None:
    d = DemoConfig()
    p = sub.add_parser("demo", help="run the oracle, random and search agents; write a report")
    p.add_argument("--out", type=Path, default=Path("demo"), help="output directory (demo/)")
    p.add_argument("--address", help="use a running farm instead of starting one")
    p.add_argument("--targets", type=int, default=d.targets, help="number of target scenes")
    p.add_argument(
        "--budgets",
        type=_budgets,
        default=d.budgets,
        help="search budgets in renders, comma-separated (default 32,128,512)",
    )
    p.add_argument("--batch", type=int, default=d.batch, help="search proposals per round")
    p.add_argument("--min-objects", type=int, default=d.min_objects)
    p.add_argument("--max-objects", type=int, default=d.max_objects)
    p.add_argument("--scene-seed", type=int, default=d.scene_seed)
    p.add_argument("--seed", type=int, default=d.agent_seed, help="agents' random seed")
    add_frame_options(p, size=str(d.size))
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument(
        "--svg-targets", type=int, default=d.svg_targets,
        help=f"SVG compositions for the SVG part (default {d.svg_targets}; 0: CLEVR only)",
    )  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..jobs.demo import run_demo, write_report

    try:
        cfg = DemoConfig(
            targets=args.targets,
            budgets=args.budgets,
            batch=args.batch,
            min_objects=args.min_objects,
            max_objects=args.max_objects,
            scene_seed=args.scene_seed,
            agent_seed=args.seed,
            **farm_frame(args),
            workers=args.workers,
            svg_targets=args.svg_targets,
        )
    except ValueError as exc:
        print(f"derender demo: {exc}", file=sys.stderr)
        return 2
    result = run_demo(cfg, args.address)
    report, sheet = write_report(result, args.out)
    print(f"derender demo: wrote {report} and {sheet} in {result.wall_s:.1f} s")
    for budget, reward in result.search_curve():
        print(f"  search best reward within {budget} renders: {reward:.3f}")
    return 0
