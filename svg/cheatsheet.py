"""The SVG environment's cheat sheet (``info.cheatsheets["svg"]``): for an agent's prompt.

Built from the policy's own allowlists and limits, so the text cannot drift from what the
renderer accepts.
"""

from __future__ import annotations

from .canvas import SvgCanvas
from .policy import ATTRIBUTES, DEFAULT_LIMITS, ELEMENTS


def svg_cheatsheet(canvas: SvgCanvas | None = None) -> str:
    """Plain text, about 25 lines: the task, the canvas, what is allowed, the rules."""
    canvas = canvas or SvgCanvas()
    w, h = canvas.width, canvas.height
    limits = DEFAULT_LIMITS
    return f"""\
# derender SVG: redraw the pictured composition as one SVG document.
Canvas: {w}x{h} px on a white background; your document is rasterised at that size.
Start with <svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">
and draw the shapes in paint order (later ones on top).

## Example
<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">
  <rect x="4" y="6" width="20" height="14" fill="#4363d8"/>
  <circle cx="40" cy="30" r="9" fill="#e6194b" stroke="#000000" stroke-width="2"/>
  <polygon points="10,50 20,36 30,50" fill="#3cb44b"/>
  <line x1="36" y1="54" x2="60" y2="44" stroke="#911eb4" stroke-width="3"/>
  <path d="M44 8 Q52 2 60 10 L50 18 Z" fill="#f58231"/>
</svg>

## Allowed
elements: {", ".join(sorted(ELEMENTS))}
attributes: {", ".join(sorted(ATTRIBUTES))} (xlink:href too)
href and url(...) may only name a #id of your own document; CSS without @-rules or escapes.

## Rules
UTF-8, no DTD or entities, no images, scripts, text, filters or external references.
At most {limits.max_bytes} bytes, {limits.max_nodes} elements, nesting depth {limits.max_depth},
{limits.max_path_chars} characters of path data per element, numbers within ±{limits.max_number:g};
a render gets {limits.deadline_s:g} s. A refused document scores 0 and says why.
"""
