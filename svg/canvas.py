"""The SVG environment's locked frame: a fixed canvas every target and candidate fills.

A candidate is always rasterised at the canvas size over the canvas background, whatever
its own ``width``/``height``/``viewBox`` say, so a document cannot ask for a bigger surface
than the frame and two documents are compared pixel for pixel.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_SIZE = 64  # the seed paper's observation size
MAX_SIZE = 1024


@dataclass(frozen=True)
class SvgCanvas:
    """Width and height in pixels and the background colour (RGB bytes)."""

    width: int = DEFAULT_SIZE
    height: int = DEFAULT_SIZE
    background: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= MAX_SIZE:
                raise ValueError(f"canvas {name} must be an int in 8..{MAX_SIZE}, got {value!r}")
        bg = tuple(self.background)
        if len(bg) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in bg):
            raise ValueError(f"canvas background must be three bytes, got {self.background!r}")
        object.__setattr__(self, "background", bg)

    def to_dict(self) -> dict[str, Any]:
        return {"env": "svg", **asdict(self), "background": list(self.background)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SvgCanvas:
        return cls(int(data["width"]), int(data["height"]), tuple(data["background"]))

    def hash(self) -> str:
        """16 hex digits: every SVG target and render names the canvas it used."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
