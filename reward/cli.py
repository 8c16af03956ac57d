"""``derender bench reward`` and ``derender bench ladder``, and the shared ``derender bench``
command they hang under.

``derender bench TARGET`` is one command whose targets come from several packages: any
command module calls :func:`bench_targets` in its ``register`` to get the ``bench``
sub-parsers (created by whichever module registers first) and adds its own target, e.g.
``bench_targets(sub).add_parser("farm", ...)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def bench_targets(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-parsers of ``derender bench``, creating the ``bench`` command on first use."""
    bench = sub.choices.get("bench")
    if bench is None:
        bench = sub.add_parser("bench", help="throughput benchmarks (derender bench TARGET)")
        bench.set_defaults(func=lambda _args: bench.print_help() or 2)
        bench.set_defaults(_bench_targets=bench.add_subparsers(dest="target", metavar="TARGET"))
    return bench.get_default("_bench_targets")


def register(sub: argparse._SubParsersAction) -> None:
    p = bench_targets(sub).add_parser(
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

    lad = bench_targets(sub).add_parser(
        "ladder", help="does a preset rank 7 programs (oracle ... syntax error) as a person would?"
    )
    lad.add_argument("--preset", help="reward preset (default: the farm's default)")
    lad.add_argument("--targets", type=int, default=50, help="seeded target scenes (default 50)")
    lad.add_argument("--seed", type=int, default=0, help="scene and edit seed (default 0)")
    lad.add_argument("--address", help="a running farm or `derender serve`; default: a LocalFarm")
    lad.add_argument("--workers", type=int, default=2, help="LocalFarm workers (default 2)")
    lad.add_argument("--size", type=int, default=64, help="LocalFarm px, Workbench (default 64)")
    lad.set_defaults(func=run_ladder)


def run(args: argparse.Namespace) -> int:
    from . import bench

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
    from ..protocol.client import Client
    from .ladder import run_ladder as ladder

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
