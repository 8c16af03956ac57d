"""Target ids and a bounded target cache (target id -> scene, image, masks, frame hash).

A target id is a content hash of the frame hash and the scene's pixel-determining fields,
so the same scene in the same frame gets the same id on every server and worker: a farm
broker can route by it, and a client can keep using an id after a server restart (the
server then answers ``unknown_target`` until the target is reset again).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..scenes import Scene
from .errors import UnknownTarget


def target_id(scene: Scene, frame_hash: str) -> str:
    """``t-`` + 16 hex digits; pixel_coords and CLEVR bookkeeping fields do not count."""
    objects = [
        [o.shape, o.size, o.material, o.color, o.x, o.y, o.z, o.rotation] for o in scene.objects
    ]
    blob = json.dumps([frame_hash, objects], separators=(",", ":"))
    return "t-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def svg_target_id(svg: str, canvas_hash: str) -> str:
    """The id of an SVG target: ``t-`` + 16 hex digits over the canvas and the document."""
    blob = json.dumps([canvas_hash, "svg", svg], separators=(",", ":"))
    return "t-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Target:
    """A rendered target: what a step is compared against.

    An SVG target (``env`` "svg") has an empty ``scene``; its ground truth is ``svg`` and
    ``elements`` are its drawn shapes' descriptors (``svg.render``), and ``frame_hash`` is
    the SVG canvas's hash."""

    target_id: str
    scene: Scene
    image: np.ndarray
    masks: np.ndarray | None
    frame_hash: str
    env: str = "clevr"
    svg: str | None = None
    elements: tuple[Any, ...] = ()


class TargetCache:
    """Least-recently-used map of target id -> :class:`Target`, at most ``max_entries``."""

    def __init__(self, max_entries: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Target] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tid: object) -> bool:
        return tid in self._entries

    def get(self, tid: str) -> Target:
        """The target, marked as recently used; UnknownTarget if absent or evicted."""
        try:
            self._entries.move_to_end(tid)
        except KeyError:
            raise UnknownTarget(
                f"target {tid!r} is not in this server's cache (never made, or evicted "
                f"after {self.max_entries} newer targets): reset it again"
            ) from None
        return self._entries[tid]

    def put(self, target: Target) -> Target:
        self._entries[target.target_id] = target
        self._entries.move_to_end(target.target_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return target
