"""``derender farm``, ``derender farm status``, ``derender farm join`` and ``derender dataset``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .options import DEFAULT_BIND, add_frame_options, farm_frame

if TYPE_CHECKING:
    from ..farm.config import FarmConfig


def _gpus(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(g) for g in text.split(",") if g.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpus must be like 0,1 — got {text!r}") from None


def _farm_options(p: argparse.ArgumentParser, workers: int | None) -> None:
    p.add_argument("--workers", type=int, default=workers, help="step worker processes")
    add_frame_options(p)


def _worker_options(p: argparse.ArgumentParser) -> None:
    """How workers are launched: the same for the farm's and for a worker host's."""
    p.add_argument("--gpus", type=_gpus, help="pin workers round-robin to these GPUs: 0,1")
    p.add_argument("--blender", help="run workers under this Blender binary")
    p.add_argument("--config", type=Path, help="farm.toml (keys: FarmConfig fields)")
    p.add_argument(
        "--no-os-sandbox",
        action="store_true",
        help="DANGEROUS: run workers without bubblewrap; an escaped script gets this "
        "process's user, files, processes and network",
    )


def _resource(text: str) -> tuple[str, float]:
    name, _, amount = text.partition("=")
    try:
        return name, float(amount or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--resource must be NAME[=AMOUNT], got {text!r}"
        ) from None


def _ray_options(p: argparse.ArgumentParser) -> None:
    """``derender farm --ray``: step workers as Ray actors (farm/ray_farm.py)."""
    p.add_argument(
        "--ray", nargs="?", const="auto", metavar="ADDRESS",
        help="run the step workers as Ray actors on this Ray cluster (default: auto, the "
        "cluster this machine is part of; 'local' starts one); needs derender[ray]",
    )  # fmt: skip
    p.add_argument("--workers-per-gpu", type=int, help="Ray: actors per GPU (num_gpus = 1/K)")
    p.add_argument("--num-cpus", type=float, default=1.0, help="Ray: CPUs per actor (1)")
    p.add_argument(
        "--resource", type=_resource, action="append", default=[], metavar="NAME[=AMOUNT]",
        help="Ray: a custom resource each actor needs, repeatable",
    )  # fmt: skip
    p.add_argument(
        "--max-restarts", type=int, default=-1, help="Ray: restarts per actor (-1: forever)"
    )


def register(sub: argparse._SubParsersAction) -> None:
    farm = sub.add_parser("farm", help="run a render farm: broker + N headless Blender workers")
    _farm_options(farm, None)
    farm.add_argument(
        "--svg-workers", type=int, metavar="N",
        help="SVG workers (cairosvg, no Blender) for env svg; with --workers 0 and "
        "target_workers 0 in --config, an SVG-only farm",
    )  # fmt: skip
    farm.add_argument(
        "--bind", action="append", metavar="ENDPOINT",
        help=f"client endpoint to bind, repeatable (default {DEFAULT_BIND})",
    )  # fmt: skip
    _worker_options(farm)
    _ray_options(farm)
    farm.set_defaults(func=run_farm_command)
    farm_sub = farm.add_subparsers(dest="farm_command", metavar="SUBCOMMAND")
    status = farm_sub.add_parser("status", help="workers, queue, rate, latency, restarts")
    status.add_argument("--address", default=DEFAULT_BIND, help="the farm's address")
    status.add_argument("--json", action="store_true", help="print the raw status JSON")
    status.add_argument("--timeout", type=float, default=5.0)
    status.set_defaults(func=run_status)
    join = farm_sub.add_parser(
        "join", help="run sandboxed workers on this host for a farm elsewhere (CURVE)"
    )
    _farm_options(join, 1)
    join.add_argument(
        "--connect", required=True, help="the farm's remote_backend: tcp://FARM-HOST:5556"
    )
    join.add_argument(
        "--server-key", type=Path, required=True, help="the farm's public key file (farm.key)"
    )
    join.add_argument(
        "--keys",
        type=Path,
        required=True,
        help="this host's secret key file; its .key must be in the farm's curve_clients",
    )
    join.add_argument("--role", choices=("step", "target"), default="step")
    join.add_argument("--name", help="prefix of this host's worker ids (default: hostname)")
    _worker_options(join)
    join.set_defaults(func=run_join)

    ds = sub.add_parser("dataset", help="batch-render a target dataset through a farm")
    ds.add_argument("--count", type=int, required=True, help="number of scenes")
    ds.add_argument("--out", type=Path, required=True, help="output directory")
    ds.add_argument("--seed", type=int, default=0, help="generator seed (scene i = index i)")
    ds.add_argument("--address", help="use this running farm instead of starting one")
    _farm_options(ds, 2)
    ds.set_defaults(func=run_dataset)


def _load_config(args: argparse.Namespace, **overrides: object) -> FarmConfig:
    """The frame and worker flags and ``overrides`` over ``--config`` over defaults."""
    from ..farm.config import FarmConfig

    overrides |= {
        **farm_frame(args, only_given=True),
        "gpus": args.gpus,
        "blender": args.blender,
        "os_sandbox": False if args.no_os_sandbox else None,
    }
    if args.config is not None:
        return FarmConfig.load(args.config, **overrides)
    return FarmConfig.from_dict({k: v for k, v in overrides.items() if v is not None})


def _config(args: argparse.Namespace) -> FarmConfig:
    """Flags over ``--config`` over defaults; the client address defaults to port 5555."""
    from dataclasses import replace

    config = _load_config(
        args, workers=args.workers, bind=args.bind, svg_workers=getattr(args, "svg_workers", None)
    )
    return config if config.bind else replace(config, bind=(DEFAULT_BIND,))


def _log_to_stderr() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def run_farm_command(args: argparse.Namespace) -> int:
    from ..farm.run import run_farm

    _log_to_stderr()
    try:
        config = _config(args)
    except (ValueError, OSError) as exc:
        print(f"derender farm: {exc}", file=sys.stderr)
        return 2
    try:
        if args.ray is not None:
            return run_ray_farm(args, config)
        return run_farm(config)
    except ValueError as exc:  # e.g. a non-loopback bind (InsecureBind)
        print(f"derender farm: {exc}", file=sys.stderr)
        return 2


def run_ray_farm(args: argparse.Namespace, config: FarmConfig) -> int:
    """``derender farm --ray``: a RayFarm in the foreground until SIGTERM or SIGINT."""
    import signal
    import threading

    try:
        from ..farm.ray_farm import RayFarm
    except ImportError as exc:
        print(f"derender farm --ray: {exc} (pip install 'derender[ray]')", file=sys.stderr)
        return 2
    stopping = threading.Event()
    old = {s: signal.signal(s, lambda *_: stopping.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    options = config.to_dict()
    farm = RayFarm(
        options.pop("workers"),  # the actors
        ray_address=args.ray,
        num_cpus=args.num_cpus,
        workers_per_gpu=args.workers_per_gpu,
        resources=dict(args.resource),
        max_restarts=args.max_restarts,
        **options,
    )
    try:
        farm.start()
        print(f"derender farm --ray: {config.workers} Ray workers; clients connect to "
              f"{farm.address}", file=sys.stderr, flush=True)  # fmt: skip
        stopping.wait()
        return 0
    finally:
        farm.stop()
        for s, handler in old.items():
            signal.signal(s, handler)


def run_join(args: argparse.Namespace) -> int:
    """``derender farm join``: a :class:`~derender.farm.remote.WorkerHost` in the foreground."""
    from ..farm.host_link import FarmLink, check_key_hidden
    from ..farm.remote import FarmRefused, WorkerHost, run_host

    _log_to_stderr()
    try:
        config = _load_config(args)
        if config.os_sandbox:
            check_key_hidden(args.keys, config.blender)
        link = FarmLink.load(args.connect, args.server_key, args.keys)
        host = WorkerHost(config, link, args.role, args.workers, args.name)
    except (ValueError, OSError) as exc:
        print(f"derender farm join: {exc}", file=sys.stderr)
        return 2
    try:
        return run_host(host)
    except FarmRefused as exc:
        print(f"derender farm join: {exc}", file=sys.stderr)
        return 1


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
