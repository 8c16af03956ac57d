"""``derender serve``: the derender protocol from a farm of one step worker.

The serving process is the farm's broker: it holds the target cache and scores rewards,
and runs no agent code. Scripts run in one disposable step worker (a headless Blender in
the OS sandbox) and targets are rendered by one target worker, exactly as in
``derender farm``; a worker that crashes, hangs or tampers is replaced and the request
still gets its answer. Loopback only unless CURVE keys are given; a non-loopback address
without keys is refused with exit status 2. Once bound, one line
``derender serve: listening on ...`` goes to stdout (scripts and tests wait for it).
SIGTERM and SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .options import DEFAULT_BIND, add_frame_options, add_hard_deadline_option, farm_frame


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the derender protocol from one sandboxed worker")
    p.add_argument(
        "--bind",
        "--address",  # the name it had before 0.2
        dest="bind",
        action="append",
        metavar="ENDPOINT",
        help=f"ZeroMQ endpoint to bind, repeatable (default {DEFAULT_BIND}; "
        "tcp://127.0.0.1:* picks a free port)",
    )
    add_frame_options(p)
    p.add_argument(
        "--curve-secret",
        type=Path,
        metavar="FILE",
        help="the server's .key_secret file (from `derender keys`)",
    )
    p.add_argument(
        "--curve-clients",
        type=Path,
        metavar="DIR",
        help="directory of the accepted clients' public .key files",
    )
    p.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a CLEVR scenes file clients can reset to by name, repeatable",
    )
    p.add_argument(
        "--deadline",
        type=float,
        default=None,
        metavar="S",
        help="an agent script's time budget in seconds (sandbox default if unset)",
    )
    add_hard_deadline_option(p)
    p.add_argument("--preset", default=None, help="default reward preset")
    p.add_argument("--verbose", action="store_true", help="log the farm's activity")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from ..farm.config import FarmConfig
    from ..farm.run import run_farm
    from ..protocol.transport import InsecureBind
    from ..scenes import load_scenes

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="derender serve: %(levelname)s %(message)s",
    )
    addresses = tuple(args.bind or [DEFAULT_BIND])
    try:
        if (args.curve_secret is None) != (args.curve_clients is None):
            raise ValueError("--curve-secret and --curve-clients go together")
        datasets = {}
        for spec in args.dataset:
            name, sep, path = spec.partition("=")
            if not sep or not name:
                raise ValueError(f"--dataset must be NAME=PATH, got {spec!r}")
            datasets[name] = load_scenes(path)
        options = {
            **farm_frame(args),
            "sandbox_deadline": args.deadline,
            "hard_deadline": args.hard_deadline,
            "preset": args.preset,
            "curve_secret": None if args.curve_secret is None else str(args.curve_secret),
            "curve_clients": None if args.curve_clients is None else str(args.curve_clients),
        }
        config = FarmConfig(
            workers=1,
            bind=addresses,
            metrics_interval=0,
            **{k: v for k, v in options.items() if v is not None},
        )
    except (ValueError, OSError) as exc:
        print(f"derender serve: {exc}", file=sys.stderr)
        return 2

    def listening(broker: object) -> None:
        frame = config.frame()
        print(
            f"derender serve: listening on {' '.join(broker.addresses)} "  # type: ignore[attr-defined]
            f"(engine {frame.engine}, {frame.width}x{frame.height}, frame {frame.hash()}, "
            f"curve {'on' if config.curve_secret else 'off'})",
            flush=True,
        )

    try:
        return run_farm(config, datasets=datasets, ready=listening)
    except (ValueError, InsecureBind) as exc:  # InsecureBind: a non-loopback bind without keys
        print(f"derender serve: {exc}", file=sys.stderr)
        return 2
