"""``derender serve``: a headless Blender (the pip ``bpy`` module) behind the ZeroMQ server.

Loopback only unless CURVE keys are given; a non-loopback address without keys is refused
with exit status 2. Once bound, one line ``derender serve: listening on ...`` goes to
stdout (scripts and tests wait for it). SIGTERM and SIGINT stop the loop cleanly.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"


def register(sub: argparse._SubParsersAction) -> None:
    from ..reward.spec import DEFAULT_PRESET

    p = sub.add_parser("serve", help="serve the derender protocol from a headless Blender")
    p.add_argument(
        "--address",
        action="append",
        metavar="ENDPOINT",
        help=f"ZeroMQ endpoint to bind, repeatable (default {DEFAULT_ADDRESS}; "
        "tcp://127.0.0.1:* picks a free port)",
    )
    p.add_argument("--engine", default="eevee", choices=("eevee", "workbench", "cycles"))
    p.add_argument("--size", default="320x240", help="WIDTHxHEIGHT or N for NxN")
    p.add_argument("--samples", type=int, default=16, help="render samples (EEVEE, Cycles)")
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
    p.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        help=f"default reward preset (default {DEFAULT_PRESET})",
    )
    p.add_argument("--verbose", action="store_true", help="log each request's errors")
    p.set_defaults(func=run)


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    try:
        return int(w), int(h or w)
    except ValueError:
        raise ValueError(f"--size must be WIDTHxHEIGHT or N, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    import logging

    from ..protocol.handler import Handler
    from ..protocol.transport import CurveConfig, InsecureBind, check_addresses
    from ..reward import preset
    from ..scenes import FrameSpec, load_scenes
    from .server import Server

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="derender serve: %(levelname)s %(message)s",
    )
    addresses = args.address or [DEFAULT_ADDRESS]
    try:
        width, height = _size(args.size)
        frame = FrameSpec(width=width, height=height, engine=args.engine, samples=args.samples)
        if (args.curve_secret is None) != (args.curve_clients is None):
            raise ValueError("--curve-secret and --curve-clients go together")
        curve = (
            CurveConfig(args.curve_secret, args.curve_clients)
            if args.curve_secret is not None
            else None
        )
        datasets = {}
        for spec in args.dataset:
            name, sep, path = spec.partition("=")
            if not sep or not name:
                raise ValueError(f"--dataset must be NAME=PATH, got {spec!r}")
            datasets[name] = load_scenes(path)
        # Refuse an open non-loopback bind before paying for Blender's start-up.
        check_addresses(addresses, curve)
    except (ValueError, OSError, InsecureBind) as exc:
        print(f"derender serve: {exc}", file=sys.stderr)
        return 2

    from .sandbox.limits import Limits
    from .service import Service

    try:
        limits = Limits() if args.deadline is None else Limits(deadline_s=args.deadline)
    except ValueError as exc:
        print(f"derender serve: {exc}", file=sys.stderr)
        return 2
    service = Service(frame, limits)
    handler = Handler(service, datasets=datasets, default_preset=args.preset)
    # Load the LPIPS trunk (torch) now: otherwise the first step pays seconds for it.
    preset(args.preset).lpips_identity()
    stop = {"now": False}

    def request_stop(signum: int, _frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with Server(handler, addresses, curve) as server:
        print(
            f"derender serve: listening on {' '.join(server.endpoints)} "
            f"(engine {frame.engine}, {width}x{height}, frame {handler.frame_hash}, "
            f"curve {'on' if curve else 'off'})",
            flush=True,
        )
        server.serve_forever(lambda: stop["now"])
    return 0


def spawn(args: list[str], log: Path, timeout: float = 120.0) -> tuple[subprocess.Popen, list[str]]:
    """Start ``derender serve ARGS`` in a child process; return it and its endpoints.

    The child's stdout and stderr go to the file ``log`` (a pipe nobody drains could fill
    and block the server). Waits for the ``listening on`` line (Blender's start-up takes
    seconds); raises RuntimeError with the log if the child exits or stays silent.
    """
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "derender.cli", "serve", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = Path(log).read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("derender serve: listening on "):
                return proc, line.split(" on ", 1)[1].split(" (")[0].split()
        if proc.poll() is not None:
            raise RuntimeError(f"derender serve exited with {proc.returncode}:\n{text}")
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(
        f"derender serve did not start within {timeout} s:\n{Path(log).read_text(errors='replace')}"
    )
