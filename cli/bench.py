"""``derender bench TARGET``: every benchmark, in one home (the ``bench`` package).

``reward``, ``ladder`` and ``farm`` have their options here; the others
(``render``, ``step``, ``protocol``, ``panel``, ``os-sandbox``, ``relay``, ``visibility``) take
theirs from their own module (``derender bench render --help``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from .options import ENGINES

# Benchmarks whose options live in their own module's ``main(argv)``.
SCRIPTS: dict[str, str] = {
    "render": "renders per second in one warm Blender, per engine and size, by stage",
    "step": "a step's CPU outside the render, by stage and dialect, and render-free steps/s",
    "protocol": "protocol round trips against in-process calls",
    "panel": "latency of the add-on panel's operators",
    "os-sandbox": "what the OS sandbox costs: worker start-up and farm throughput",
    "relay": "what a worker host's relay costs: step latency and throughput vs local",
    "visibility": "what CLEVR's visibility rule costs a target pipeline",
}


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks (derender bench TARGET)")
    bench.set_defaults(func=lambda _args: bench.print_help() or 2)
    targets = bench.add_subparsers(dest="target", metavar="TARGET")
    p = targets.add_parser(
        "reward", help="reward pairs/s by image size and batch size (CPU or CUDA)"
    )
    p.add_argument("--preset", default="seed", help="reward preset (default seed)")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="input px")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256])
    p.add_argument(
        "--trunk",
        default="random:0",
        help="LPIPS trunk: 'torchvision' (real weights) or 'random:<seed>' (timing only; "
        "default random:0, since real weights are often absent)",
    )
    p.add_argument("--seconds", type=float, default=2.0, help="time per cell (default 2)")
    p.add_argument(
        "--group", type=int, default=1,
        help="candidates per target, as in an RL group (default 1: all targets distinct)",
    )  # fmt: skip
    p.add_argument("--json", type=Path, help="also write the report as JSON here")
    p.set_defaults(func=run)

    lad = targets.add_parser(
        "ladder", help="does a preset rank 7 programs (oracle ... syntax error) as a person would?"
    )
    lad.add_argument("--preset", help="reward preset (default: the farm's default)")
    lad.add_argument("--targets", type=int, default=50, help="seeded target scenes (default 50)")
    lad.add_argument("--seed", type=int, default=0, help="scene and edit seed (default 0)")
    lad.add_argument("--address", help="a running farm or `derender serve`; default: a LocalFarm")
    lad.add_argument("--workers", type=int, default=2, help="LocalFarm workers (default 2)")
    lad.add_argument("--size", type=int, default=64, help="LocalFarm px, Workbench (default 64)")
    lad.set_defaults(func=run_ladder)

    farm = targets.add_parser(
        "farm", help="farm steps/s vs bare bpy loop and vs a process per episode"
    )
    farm.add_argument(
        "--env", choices=("clevr", "svg"), default="clevr",
        help="clevr: Blender engines vs a bare bpy loop; svg: SVG workers vs a bare cairosvg loop",
    )  # fmt: skip
    farm.add_argument("--engines", nargs="+", choices=ENGINES, default=["workbench", "cycles"])
    farm.add_argument("--size", type=int, default=64, help="render size in px (default 64)")
    farm.add_argument("--workers", type=int, default=2)
    farm.add_argument("--steps", type=int, default=200, help="steps per farm measurement")
    farm.add_argument("--episodes", type=int, default=3, help="fresh-process episodes timed")
    farm.add_argument(
        "--repeat", type=int, default=2, help="best of N interleaved runs per measurement"
    )
    farm.add_argument(
        "--ray", action="store_true",
        help="also run the workers as Ray actors (a Ray of its own, loopback): (d) vs local",
    )  # fmt: skip
    farm.add_argument(
        "--preset", default="seed-svg", help="reward preset of the svg farm (default seed-svg)"
    )
    farm.add_argument("--json", type=Path, help="also write the report as JSON here")
    farm.set_defaults(func=run_farm)

    for name, help_text in SCRIPTS.items():
        script = targets.add_parser(name, help=help_text, add_help=False)
        script.add_argument("script_argv", nargs=argparse.REMAINDER)
        script.set_defaults(func=lambda args, name=name: _script(name, args.script_argv))


def _script(name: str, argv: list[str]) -> int:
    module = importlib.import_module(f"..bench.{name.replace('-', '_')}", __package__)
    return int(module.main(argv) or 0)


def run_farm(args: argparse.Namespace) -> int:
    if args.env == "svg":
        from ..bench import svg_farm

        report = svg_farm.run(args.workers, args.size, args.steps, args.repeat, args.preset)
        print(svg_farm.format_report(report))
    else:
        from ..bench.farm import format_report, run

        report = run(
            args.engines, args.size, args.workers, args.steps, args.episodes, args.repeat, args.ray
        )
        print(format_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..bench import reward as bench

    if any(s < 16 for s in args.sizes) or any(b < 1 for b in args.batches):
        print("derender bench reward: sizes must be >= 16 and batches >= 1", file=sys.stderr)
        return 2
    try:
        report = bench.run(
            args.sizes, args.batches, args.preset, args.trunk, args.seconds, args.group
        )
    except ValueError as exc:
        print(f"derender bench reward: {exc}", file=sys.stderr)
        return 2
    print(bench.format_report(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def run_ladder(args: argparse.Namespace) -> int:
    from ..bench.ladder import run_ladder as ladder
    from ..protocol.client import Client

    if args.targets < 2:
        print("derender bench ladder: --targets must be >= 2", file=sys.stderr)
        return 2
    farm = None
    address = args.address
    if address is None:
        from ..farm.local import LocalFarm

        farm = LocalFarm(workers=args.workers, engine="workbench", size=args.size).start()
        address = farm.address
    try:
        with Client(address, timeout=120) as client:
            report = ladder(client, args.preset, args.targets, args.seed)
    finally:
        if farm is not None:
            farm.stop()
    print(report.table())
    return 0
