"""The ``derender`` command line. Each subcommand lives beside the code it drives.

A command module exposes ``register(subparsers)``, which adds its parsers and sets
``func`` (``args -> exit status``). Command modules import heavy dependencies (bpy, torch,
zmq) inside their handlers only, so ``derender --help`` stays fast and bpy-free.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__

_COMMAND_MODULES: tuple[str, ...] = (
    ".scenes.cli",
    ".addon.extension_cli",
    ".addon.serve_cli",
    ".addon.render_cli",
    ".addon.exec_cli",
    ".addon.step_bench",
    ".protocol.keys",
    ".reward.cli",
    ".farm.cli",
    ".farm.demo_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="derender",
        description="Blender as an inverse-graphics RL environment (CLEVR scenes).",
    )
    parser.add_argument("--version", action="version", version=f"derender {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name, __package__).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
