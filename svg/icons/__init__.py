"""Bundled icons: a curated subset of Tabler Icons, the SVG environment's icon targets.

Source: Tabler Icons (https://github.com/tabler/tabler-icons, MIT licence, text in
``LICENSE`` here), the outline set as the PyPI wheel ``pytablericons`` 1.0.1 ships it
(``pytablericons/icons/outline/*.svg``, icons up to Tabler 3.2). The package itself is not a
dependency (it pulls in pygame and Pillow); 58 of its 4577 outline icons are copied here:
recognisable pictograms (star, heart, home, arrows, weather, tools ...) drawn with at most a
few ``<path>`` elements, each file as shipped less its comment header (category and tags).
Left out: icons drawn only with axis-aligned straight strokes (``minus``, ``plus``), whose
paths the renderer's shape descriptors skip (a box of zero area), so the element-level
reward would see no shape in them.
Every file is a 24×24 ``viewBox`` with ``fill="none" stroke="currentColor"
stroke-width="2"`` and round caps and joins on the root.

:func:`place` writes an icon's paths in canvas coordinates (scaled and translated, with
the paint on every element), so an icon target's ground truth is a flat list of shapes and
the renderer's shape descriptors, which ignore transforms, report them where they are drawn.
The files are this package's own data, parsed with the standard library; the tests check
each against the hardened policy an agent's document meets.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from importlib import resources

VIEWBOX = 24  # the side of every Tabler icon's viewBox
STROKE_WIDTH = 2  # Tabler's stroke width, in viewBox units
_TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ARITY = {"M": 2, "L": 2, "T": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "A": 7, "Z": 0}


class IconError(ValueError):
    """An icon that is not bundled, or a bundled file outside what :func:`place` draws."""


@functools.lru_cache(maxsize=1)
def names() -> tuple[str, ...]:
    """The bundled icons' names (file stems), sorted."""
    files = resources.files(__name__).iterdir()
    return tuple(sorted(f.name[: -len(".svg")] for f in files if f.name.endswith(".svg")))


def source(name: str) -> str:
    """The bundled file of icon ``name``, as text."""
    if name not in names():
        raise IconError(f"no bundled icon {name!r}; bundled: {', '.join(names())}")
    return resources.files(__name__).joinpath(f"{name}.svg").read_text(encoding="utf-8")


@functools.cache
def paths(name: str) -> tuple[str, ...]:
    """The ``d`` of each of icon ``name``'s paths, in paint order."""
    root = ET.fromstring(source(name))
    out: list[str] = []
    for element in root:
        if element.tag.rpartition("}")[2] != "path" or set(element.attrib) != {"d"}:
            raise IconError(f"icon {name!r}: only bare <path d=...> elements are drawn")
        out.append(element.attrib["d"])
    return tuple(out)


def _number(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _mapped(command: str, args: list[float], s: float, tx: float, ty: float) -> list[float]:
    """One command's arguments scaled by ``s`` and, when absolute, moved by (tx, ty)."""
    if command.islower():
        if command == "a":  # radii and end offset scale; rotation and flags do not
            return [args[0] * s, args[1] * s, *args[2:5], args[5] * s, args[6] * s]
        return [v * s for v in args]
    if command == "H":
        return [args[0] * s + tx]
    if command == "V":
        return [args[0] * s + ty]
    if command == "A":
        return [args[0] * s, args[1] * s, *args[2:5], args[5] * s + tx, args[6] * s + ty]
    return [v * s + (tx if k % 2 == 0 else ty) for k, v in enumerate(args)]


def transformed(d: str, s: float, tx: float, ty: float) -> str:
    """Path data ``d`` under ``translate(tx, ty) scale(s)``, written out in its own commands."""
    tokens = _TOKEN.findall(d)
    if not tokens or tokens[0] != "M":
        raise IconError(f"path data must start with an absolute M: {d[:40]!r}")
    out: list[str] = []
    command, i = "", 0
    while i < len(tokens):
        if tokens[i].isalpha():
            command, i = tokens[i], i + 1
            out.append(command)
            if command in "Zz":
                continue
        arity = _ARITY.get(command.upper(), 0)
        args = tokens[i : i + arity]
        if not arity or len(args) < arity or any(a.isalpha() for a in args):
            raise IconError(f"path data {d[:40]!r}: {command!r} needs {arity} numbers at {i}")
        values = [float(a) for a in args]
        if command in "Aa" and not {values[3], values[4]} <= {0.0, 1.0}:
            raise IconError(f"path data {d[:40]!r}: arc flags must be 0 or 1")
        out.append(" ".join(_number(v) for v in _mapped(command, values, s, tx, ty)))
        i += arity
    return " ".join(out)


def place(name: str, x: int, y: int, size: int, stroke: str, stroke_width: float) -> list[str]:
    """Icon ``name`` drawn in the box (x, y, size, size) of the canvas: one ``<path>`` per
    element of the icon, stroked ``stroke`` at ``stroke_width`` canvas px, unfilled."""
    s = size / VIEWBOX
    paint = (
        f'fill="none" stroke="{stroke}" stroke-width="{_number(stroke_width)}" '
        'stroke-linecap="round" stroke-linejoin="round"'
    )
    return [f'<path d="{transformed(d, s, x, y)}" {paint}/>' for d in paths(name)]
