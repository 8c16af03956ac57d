"""Options every command that names a frame, a server or a farm shares, parsed one way.

- The frame: ``--frame clevr|clevr-rl``, ``--engine``, ``--size WxH`` (or ``N``),
  ``--samples``; an engine not named follows :func:`scenes.frame.default_engine` (EEVEE
  where a GPU is present, else Workbench) everywhere.
- Addresses: a server *binds* (``--bind``, repeatable); a client *connects*
  (``--address``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from ..scenes.frame import ENGINES, PRESETS, FrameSpec, default_engine, gpu_present, preset

DEFAULT_BIND = "tcp://127.0.0.1:5555"
DEFAULT_SIZE = "128"

__all__ = ["DEFAULT_BIND", "ENGINES", "add_frame_options", "frame_from_args", "parse_size"]


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` or ``N`` (square) -> (width, height); ValueError names the text."""
    w, sep, h = text.lower().partition("x")
    try:
        size = (int(w), int(h) if sep else int(w))
    except ValueError:
        raise ValueError(f"--size must be WIDTHxHEIGHT or N, got {text!r}") from None
    if min(size) < 1:
        raise ValueError(f"--size must be positive, got {text!r}")
    return size


def add_frame_options(p: argparse.ArgumentParser, size: str = DEFAULT_SIZE) -> None:
    p.add_argument(
        "--frame",
        choices=PRESETS,
        help="frame preset: clevr (480x320, Cycles 512 samples; EEVEE with a GPU) or "
        "clevr-rl (128x128; EEVEE with a GPU, else Workbench)",
    )
    p.add_argument(
        "--engine", choices=ENGINES, help="default: eevee where a GPU is present, else workbench"
    )
    p.add_argument("--size", help=f"WIDTHxHEIGHT (e.g. 480x320) or N for NxN (default {size})")
    p.add_argument("--samples", type=int, help="render samples (default: the preset's, else 16)")
    p.set_defaults(default_size=size)


def frame_from_args(args: argparse.Namespace) -> FrameSpec:
    """The frame the flags ask for: the preset, then engine, size and samples on top."""
    if args.frame is not None:
        spec = preset(args.frame, gpu_present())
        if args.engine is not None:
            spec = replace(spec, engine=args.engine)
        size = args.size
    else:
        # FrameSpec's own samples, as FarmConfig keeps them: one frame, however started.
        spec = FrameSpec(engine=args.engine or default_engine())
        size = args.size or args.default_size
    if size is not None:
        spec = spec.with_size(*parse_size(size))
    return spec if args.samples is None else replace(spec, samples=args.samples)


def farm_frame(args: argparse.Namespace, only_given: bool = False) -> dict[str, Any]:
    """The FarmConfig fields of the frame the flags ask for (``only_given``: none when no
    frame flag was given, so that a config file's frame stands)."""
    if only_given and all(getattr(args, k) is None for k in ("frame", "engine", "size", "samples")):
        return {}
    spec = frame_from_args(args)
    return {
        "engine": spec.engine,
        "size": spec.width,
        "height": spec.height,
        "samples": spec.samples,
    }


def add_hard_deadline_option(p: argparse.ArgumentParser) -> None:
    """``--hard-deadline S``: one flag, one meaning, for every command that runs scripts."""
    p.add_argument(
        "--hard-deadline",
        type=float,
        default=None,
        metavar="S",
        help="seconds a step may take in all, render included, before its worker is "
        "killed and replaced (the step ends with outcome timeout; default 60)",
    )
