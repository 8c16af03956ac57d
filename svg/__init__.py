"""The SVG round-trip environment: seeded 2D targets, a hardened renderer, a light worker.

Nothing here imports bpy. The renderer's dependencies (cairosvg, defusedxml) are the
``svg`` extra; importing this package imports neither: :mod:`.render` does.
"""

from .canvas import SvgCanvas
from .generator import Composition, Shape, SvgGeneratorConfig, generate

__all__ = ["Composition", "Shape", "SvgCanvas", "SvgGeneratorConfig", "generate"]
