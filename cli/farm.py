"""``derender farm``, ``derender farm status`` and ``derender dataset``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .options import DEFAULT_BIND, add_frame_options, farm_frame


def _gpus(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(g) for g in text.split(",") if g.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpus must be like 0,1 — got {text!r}") from None


def _farm_options(p: argparse.ArgumentParser, workers: int | None) -> None:
    p.add_argument("--workers", type=int, default=workers, help="step worker processes")
    add_frame_options(p)


def register(sub: argparse._SubParsersAction) -> None:
    farm = sub.add_parser("farm", help="run a render farm: broker + N headless Blender workers")
    _farm_options(farm, None)
    farm.add_argument(
        "--bind", action="append", metavar="ENDPOINT",
        help=f"client endpoint to bind, repeatable (default {DEFAULT_BIND})",
    )  # fmt: skip
    farm.add_argument("--gpus", type=_gpus, help="pin workers round-robin to these GPUs: 0,1")
    farm.add_argument("--blender", help="run workers under this Blender binary")
    farm.add_argument("--config", type=Path, help="farm.toml (keys: FarmConfig fields)")
    farm.add_argument(
        "--no-os-sandbox",
        action="store_true",
        help="DANGEROUS: run workers without bubblewrap; an escaped script gets this "
        "farm's user, files, processes and network",
    )
    farm.set_defaults(func=run_farm_command)
    farm_sub = farm.add_subparsers(dest="farm_command", metavar="SUBCOMMAND")
    status = farm_sub.add_parser("status", help="workers, queue, rate, latency, restarts")
    status.add_argument("--address", default=DEFAULT_BIND, help="the farm's address")
    status.add_argument("--json", action="store_true", help="print the raw status JSON")
    status.add_argument("--timeout", type=float, default=5.0)
    status.set_defaults(func=run_status)

    ds = sub.add_parser("dataset", help="batch-render a target dataset through a farm")
    ds.add_argument("--count", type=int, required=True, help="number of scenes")
    ds.add_argument("--out", type=Path, required=True, help="output directory")
    ds.add_argument("--seed", type=int, default=0, help="generator seed (scene i = index i)")
    ds.add_argument("--address", help="use this running farm instead of starting one")
    _farm_options(ds, 2)
    ds.set_defaults(func=run_dataset)


def _config(args: argparse.Namespace) -> object:
    """Flags over ``--config`` over defaults; the client address defaults to port 5555."""
    from dataclasses import replace

    from ..farm.config import FarmConfig

    overrides = {
        "workers": args.workers,
        **farm_frame(args, only_given=True),
        "bind": args.bind,
        "gpus": args.gpus,
        "blender": args.blender,
        "os_sandbox": False if args.no_os_sandbox else None,
    }
    if args.config is not None:
        config = FarmConfig.load(args.config, **overrides)
    else:
        config = FarmConfig.from_dict({k: v for k, v in overrides.items() if v is not None})
    return config if config.bind else replace(config, bind=DEFAULT_BIND)


def run_farm_command(args: argparse.Namespace) -> int:
    from ..farm.run import run_farm

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        config = _config(args)
    except (ValueError, OSError) as exc:
        print(f"derender farm: {exc}", file=sys.stderr)
        return 2
    try:
        return run_farm(config)  # type: ignore[arg-type]
    except ValueError as exc:  # e.g. a non-loopback bind (InsecureBind)
        print(f"derender farm: {exc}", file=sys.stderr)
        return 2


def run_status(args: argparse.Namespace) -> int:
    from ..farm.status import format_status, query_status
    from ..protocol.errors import ClientTimeout, ProtocolError

    try:
        status = query_status(args.address, args.timeout)
    except (ClientTimeout, ProtocolError) as exc:
        print(f"derender farm status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def run_dataset(args: argparse.Namespace) -> int:
    from ..jobs.dataset import make_dataset

    if args.count < 1:
        print(f"derender dataset: --count must be >= 1, got {args.count}", file=sys.stderr)
        return 2
    try:
        options = farm_frame(args)
    except ValueError as exc:
        print(f"derender dataset: {exc}", file=sys.stderr)
        return 2
    report = make_dataset(
        args.out, args.count, seed=args.seed, address=args.address, workers=args.workers, **options
    )
    print(json.dumps(report))
    return 0 if not report["failed"] else 1
