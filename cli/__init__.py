"""The ``derender`` command line. One module per subcommand group.

A command module exposes ``register(subparsers)``, which adds its parsers and sets
``func`` (``args -> exit status``). Command modules import heavy dependencies (bpy, torch,
zmq) inside their handlers only, so ``derender --help`` stays fast and bpy-free.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from .. import __version__

_COMMAND_MODULES: tuple[str, ...] = (
    ".scenes",
    ".extension",
    ".serve",
    ".render",
    ".exec",
    ".keys",
    ".bench",
    ".farm",
    ".demo",
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
    # A benchmark with its own options (``derender bench step --steps 3``) takes every
    # argument after its name; argparse's remainder alone drops a leading option.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "script_argv"):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.script_argv = [*extra, *args.script_argv]
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return int(args.func(args) or 0)
