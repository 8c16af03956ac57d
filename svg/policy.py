"""The hardened front of the SVG renderer: what an untrusted document may contain.

An agent's SVG is hostile input. Before cairosvg sees it, :func:`check` parses it with
defusedxml (no DTD, so no entity of any kind, internal or external: billion laughs,
quadratic blowup and XXE all stop at the ``<!DOCTYPE``) and walks the tree against an
allowlist, with bounds on everything that costs time or memory:

- elements: the shapes, groups, ``defs``/``use``, gradients and ``<style>`` only; anything
  else (``<image>``, ``<script>``, ``<foreignObject>``, filters, patterns, masks, text,
  animation ...) is refused;
- attributes: an allowlist of presentation and geometry attributes; the only namespaced
  one is ``xlink:href``, and an ``href`` may point only at a local ``#id`` that exists;
- CSS (``<style>`` and ``style=``): tokenised with tinycss2; no at-rule (``@import``,
  ``@font-face`` ...), no escape, and a ``url(...)`` only to a local ``#id`` (the same for
  every attribute value);
- bounds (:class:`SvgLimits`): document bytes, element count, nesting depth, path data and
  point list length, declared canvas size, the magnitude of any number, and the element
  count once every ``use`` is expanded (a ``use`` bomb is a billion laughs without a DTD).

Each refusal is a typed exception whose ``outcome`` is one of the sandbox outcomes of
``protocol.errors.OUTCOMES``: ``syntax_error`` (not XML, not UTF-8, not an SVG document,
a reference to an id that does not exist), ``sandbox_violation`` (a DTD, an entity, an
element, attribute, reference or CSS construct that reaches outside the document) and
``resource_limit`` (a bound).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import defusedxml
import defusedxml.ElementTree as SafeET
import tinycss2

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
SHAPES: tuple[str, ...] = ("circle", "rect", "ellipse", "line", "polyline", "polygon", "path")
ELEMENTS: frozenset[str] = frozenset(
    {"svg", "g", "defs", "use", "title", "desc", "style", "linearGradient", "radialGradient",
     "stop", *SHAPES}
)  # fmt: skip
ATTRIBUTES: frozenset[str] = frozenset(
    {
        "id", "class", "style", "version", "baseProfile", "viewBox", "preserveAspectRatio",
        "width", "height", "x", "y", "cx", "cy", "r", "rx", "ry", "x1", "y1", "x2", "y2",
        "fx", "fy", "points", "d", "transform", "href", "fill", "fill-opacity", "fill-rule",
        "stroke", "stroke-width", "stroke-opacity", "stroke-linecap", "stroke-linejoin",
        "stroke-miterlimit", "opacity", "color", "visibility", "display", "offset",
        "stop-color", "stop-opacity", "gradientUnits", "gradientTransform", "spreadMethod",
        "type", "media",
    }
)  # fmt: skip
# Attributes whose digits are not magnitudes (colours, names).
_NOT_NUMERIC = frozenset({"id", "class", "fill", "stroke", "color", "stop-color", "type", "media"})
_ID = re.compile(r"[A-Za-z_][\w.\-]*")
_LOCAL_REF = re.compile(r"#([A-Za-z_][\w.\-]*)")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_LENGTH = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(px|pt|pc|mm|cm|in|%)?\s*")
_PX_PER = {None: 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54,
           "in": 96.0, "%": 0.0}  # fmt: skip


@dataclass(frozen=True)
class SvgLimits:
    """Bounds on one untrusted document (defaults sized for 64-1024 px compositions)."""

    max_bytes: int = 65536  # the protocol's max_script_chars
    max_nodes: int = 2000
    max_depth: int = 32
    max_path_chars: int = 8192  # one ``d`` or ``points`` attribute
    max_attribute_chars: int = 1024  # any other attribute
    max_style_chars: int = 8192  # one ``<style>`` or ``style=``
    max_canvas: int = 4096  # declared width, height and viewBox sides, in px
    max_number: float = 1e5  # the magnitude of any number in an attribute
    max_expanded_nodes: int = 4000  # elements drawn once every ``use`` is expanded
    deadline_s: float = 1.0  # the whole render (:mod:`.render`)


class SvgRefused(Exception):
    """A document the renderer will not draw; ``outcome`` names the sandbox outcome."""

    outcome = "syntax_error"


class SvgSyntaxError(SvgRefused):
    """Not UTF-8, not well-formed XML, not an SVG document, or a dangling reference."""

    outcome = "syntax_error"


class SvgSandboxViolation(SvgRefused):
    """A construct that reaches outside the document (DTD, entity, external reference,
    an element or attribute outside the allowlist)."""

    outcome = "sandbox_violation"


class SvgResourceLimit(SvgRefused):
    """A bound of :class:`SvgLimits` exceeded."""

    outcome = "resource_limit"


class SvgTimeout(SvgRefused):
    """The render did not finish within ``SvgLimits.deadline_s``."""

    outcome = "timeout"


def _local(name: str) -> tuple[str | None, str]:
    """(namespace, local name) of an ElementTree tag or attribute name."""
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return None, name


def _encode(document: str | bytes, limits: SvgLimits) -> bytes:
    if isinstance(document, str):
        try:
            data = document.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SvgSyntaxError(f"the document is not valid UTF-8 text: {exc}") from None
    else:
        data = bytes(document)
    if len(data) > limits.max_bytes:
        raise SvgResourceLimit(
            f"the document has {len(data)} bytes; the limit is {limits.max_bytes}"
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SvgSyntaxError(f"the document is not valid UTF-8: {exc}") from None
    return data


def parse(document: str | bytes, limits: SvgLimits) -> ET.Element:
    """The root element of a well-formed, DTD-free UTF-8 document; typed refusal else."""
    data = _encode(document, limits)
    body = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if body.startswith(b"<?xml"):
        body = body.partition(b"?>")[2]
    if b"<?" in body:  # <?xml-stylesheet href=...?> and kin: nothing may name a resource
        raise SvgSandboxViolation("processing instructions (<?...?>) are not allowed")
    head = data[:256].lower()
    if b"encoding=" in head and not re.search(rb"encoding=[\"']utf-?8[\"']", head):
        raise SvgSyntaxError("the XML declaration names an encoding other than UTF-8")
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        raise SvgSandboxViolation("a DTD (<!DOCTYPE ...>) is not allowed in the document") from None
    except defusedxml.EntitiesForbidden as exc:
        raise SvgSandboxViolation(f"XML entities are not allowed: {exc}") from None
    except defusedxml.ExternalReferenceForbidden as exc:
        raise SvgSandboxViolation(f"external references are not allowed: {exc}") from None
    except ET.ParseError as exc:
        raise SvgSyntaxError(f"the document is not well-formed XML: {exc}") from None
    except RecursionError:  # expat itself nests deeper than Python can follow
        raise SvgResourceLimit("the document nests too deeply to parse") from None


def _check_css(text: str, where: str, limits: SvgLimits, stylesheet: bool) -> None:
    if len(text) > limits.max_style_chars:
        raise SvgResourceLimit(
            f"{where} has {len(text)} characters of CSS; the limit is {limits.max_style_chars}"
        )
    if "\\" in text:
        raise SvgSandboxViolation(f"{where}: CSS escapes are not allowed")
    if stylesheet:
        nodes = tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True)
    else:
        nodes = tinycss2.parse_blocks_contents(text, skip_comments=True, skip_whitespace=True)
    _check_css_tokens(nodes, where)


def _check_css_tokens(nodes: list, where: str) -> None:
    for node in nodes:
        kind = getattr(node, "type", "")
        if kind == "at-rule":
            raise SvgSandboxViolation(f"{where}: CSS at-rules (@{node.at_keyword}) are not allowed")
        if kind == "url":
            _check_url(node.value, where)
        elif kind == "function" and node.lower_name == "url":
            args = [a for a in node.arguments if a.type not in ("whitespace", "comment")]
            if len(args) != 1 or args[0].type != "string":
                raise SvgSandboxViolation(f"{where}: url() must name a local #id")
            _check_url(args[0].value, where)
        elif kind == "error":
            raise SvgSyntaxError(f"{where}: CSS does not parse: {node.message}")
        for attr in ("prelude", "content", "value", "arguments"):
            children = getattr(node, attr, None)
            if isinstance(children, list):
                _check_css_tokens(children, where)


def _check_url(url: str, where: str) -> None:
    if not _LOCAL_REF.fullmatch(url.strip()):
        raise SvgSandboxViolation(
            f"{where}: a reference may only name a local #id, not {url!r:.80}"
        )


def _check_numbers(value: str, where: str, limits: SvgLimits) -> None:
    for match in _NUMBER.finditer(value):
        number = float(match.group())
        if not abs(number) <= limits.max_number:  # also catches inf from 1e999
            raise SvgResourceLimit(f"{where}: {match.group()[:40]} exceeds ±{limits.max_number:g}")


def _canvas_side(value: str | None, where: str, limits: SvgLimits) -> None:
    if value is None:
        return
    match = _LENGTH.fullmatch(value)
    if match is None:
        raise SvgSyntaxError(f"{where} is not a length: {value!r:.40}")
    px = float(match.group(1)) * _PX_PER[match.group(2)]
    if not abs(px) <= limits.max_canvas:
        raise SvgResourceLimit(
            f"{where} = {value!r:.40} exceeds the canvas limit {limits.max_canvas} px"
        )


def _check_attribute(tag: str, name: str, value: str, limits: SvgLimits) -> str | None:
    """Check one attribute; returns the id a reference attribute points at."""
    ns, local = _local(name)
    where = f"<{tag} {local}>"
    if ns not in (None, XLINK_NS) or (ns == XLINK_NS and local != "href"):
        raise SvgSandboxViolation(f"attribute {name!r:.80} on <{tag}> is not allowed")
    if local not in ATTRIBUTES or local.lower().startswith("on"):
        raise SvgSandboxViolation(f"attribute {local!r:.60} on <{tag}> is not allowed")
    budget = limits.max_path_chars if local in ("d", "points") else limits.max_attribute_chars
    if local == "style":
        _check_css(value, where, limits, stylesheet=False)
    elif len(value) > budget:
        raise SvgResourceLimit(f"{where} has {len(value)} characters; the limit is {budget}")
    if local == "href":
        match = _LOCAL_REF.fullmatch(value.strip())
        if match is None:
            raise SvgSandboxViolation(f"{where} may only name a local #id, not {value!r:.80}")
        return match.group(1)
    if "\\" in value:
        raise SvgSandboxViolation(f"{where}: backslashes (CSS escapes) are not allowed")
    if "url" in value.lower():  # a paint server or clip reference: local ids only
        _check_css_tokens(tinycss2.parse_component_value_list(value), where)
    if local == "id" and not _ID.fullmatch(value):
        raise SvgSyntaxError(f"{where} is not a valid id: {value!r:.40}")
    if local not in _NOT_NUMERIC:
        _check_numbers(value, where, limits)
    return None


DEFAULT_LIMITS = SvgLimits()


def check(document: str | bytes, limits: SvgLimits = DEFAULT_LIMITS) -> ET.Element:
    """Parse and validate an untrusted document; its root, or a typed :class:`SvgRefused`."""
    root = parse(document, limits)
    ns, tag = _local(root.tag)
    if tag != "svg" or ns not in (None, SVG_NS):
        raise SvgSyntaxError(f"the root element must be <svg>, got <{tag}>")
    for side in ("width", "height"):
        _canvas_side(root.get(side), f"<svg {side}>", limits)
    view_box = root.get("viewBox")
    if view_box is not None:
        parts = view_box.replace(",", " ").split()
        if len(parts) != 4:
            raise SvgSyntaxError(f"<svg viewBox> must have four numbers, got {view_box!r:.60}")
        for part in parts[2:]:
            _canvas_side(part, "<svg viewBox>", limits)
    ids: dict[str, ET.Element] = {}
    refs: dict[int, str] = {}  # id(element) -> the id it references
    count = 0
    stack: list[tuple[ET.Element, int]] = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        count += 1
        if count > limits.max_nodes:
            raise SvgResourceLimit(f"the document has over {limits.max_nodes} elements")
        if depth > limits.max_depth:
            raise SvgResourceLimit(f"elements nest deeper than {limits.max_depth} levels")
        if not isinstance(element.tag, str):
            raise SvgSyntaxError("the document holds a node that is not an element")
        ns, tag = _local(element.tag)
        if ns not in (None, SVG_NS):
            raise SvgSandboxViolation(f"element {element.tag!r:.80} is outside the SVG namespace")
        if tag not in ELEMENTS or (tag == "svg" and element is not root):
            raise SvgSandboxViolation(
                f"element <{tag:.40}> is not allowed; allowed: {', '.join(sorted(ELEMENTS))}"
            )
        for name, value in element.attrib.items():
            target = _check_attribute(tag, name, value, limits)
            if target is not None:
                refs[id(element)] = target
        if element.get("id") is not None:
            ids[element.get("id", "")] = element
        if tag == "style":
            _check_css(element.text or "", "<style>", limits, stylesheet=True)
        elif (element.text or "").strip() and tag not in ("title", "desc"):
            raise SvgSyntaxError(f"<{tag}> holds text; only <style>, <title> and <desc> may")
        stack.extend((child, depth + 1) for child in element)
    _check_expansion(root, ids, refs, limits)
    return root


def _check_expansion(
    root: ET.Element, ids: dict[str, ET.Element], refs: dict[int, str], limits: SvgLimits
) -> None:
    """Refuse dangling references, reference cycles and ``use`` bombs: the element count
    with every reference expanded must stay within ``max_expanded_nodes``."""
    cost: dict[int, int] = {}
    on_path: set[int] = set()

    def expanded(element: ET.Element) -> int:
        key = id(element)
        if key in cost:
            return cost[key]
        if key in on_path:
            raise SvgResourceLimit("a reference cycle: an element refers back to itself")
        on_path.add(key)
        total = 1 + sum(expanded(child) for child in element)
        if key in refs:
            target = ids.get(refs[key])
            if target is None:
                raise SvgSyntaxError(f"href='#{refs[key]}' names no element of the document")
            total += expanded(target)
        on_path.discard(key)
        if total > limits.max_expanded_nodes:
            raise SvgResourceLimit(
                f"the document expands to over {limits.max_expanded_nodes} elements "
                "once its references are followed"
            )
        cost[key] = total
        return total

    try:
        expanded(root)
    except RecursionError:
        raise SvgResourceLimit("references chain deeper than the renderer can follow") from None
