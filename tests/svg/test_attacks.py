"""The attack suite: hostile SVG documents, each refused with its typed outcome, in time,
without opening a file or a socket (watched with an audit hook while it renders)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from derender.protocol.errors import OUTCOMES
from derender.svg.render import render

ATTACKS = sorted((Path(__file__).parent / "attacks").glob("*.svg"))
CANARY = Path("/tmp/derender-svg-canary")
CANARY_TEXT = "derender-canary-7f3a9c: this must never reach a render"
# What an escape would show: any file opened, any socket, any URL or process.
WATCHED = ("open", "os.", "socket.", "urllib.", "subprocess.", "ctypes.dlopen", "shutil.")
_events: list[tuple[str, str]] = []
_watching = False


def _hook(event: str, args: tuple) -> None:
    if _watching and event.startswith(WATCHED):
        _events.append((event, repr(args)[:200]))


sys.addaudithook(_hook)


@pytest.fixture(scope="module")
def canaries():
    """The files the attacks try to read, with content that must never come back."""
    made = []
    for suffix in (".txt", ".png", ".svg", ".css", ".ttf"):
        path = CANARY.with_suffix(suffix)
        path.write_text(CANARY_TEXT)
        made.append(path)
    render('<svg xmlns="http://www.w3.org/2000/svg"><circle r="3"/></svg>')  # imports done
    yield made
    for path in made:
        path.unlink(missing_ok=True)


def test_the_suite_is_large_and_names_known_outcomes():
    assert len(ATTACKS) >= 40
    for path in ATTACKS:
        assert path.name.split("--")[0] in OUTCOMES, path.name


@pytest.mark.parametrize("path", ATTACKS, ids=lambda p: p.stem)
def test_attack_gets_its_outcome_and_touches_nothing(path, canaries):
    global _watching
    expected = path.name.split("--")[0]
    document = path.read_bytes()
    _events.clear()
    _watching = True
    t0 = time.monotonic()
    try:
        result = render(document)
    finally:
        _watching = False
    elapsed = time.monotonic() - t0
    assert result.outcome == expected, result.message
    assert result.image is None and result.masks is None
    assert _events == []
    assert CANARY_TEXT not in result.message
    # the deadline is 1 s; the alarm fires between cairo calls, and this machine is shared
    assert elapsed < 4.0


def test_a_render_that_fetches_is_refused_by_the_url_fetcher():
    """Defence in depth: were a reference to slip past the policy, cairosvg's fetcher
    refuses it (called here as cairosvg would)."""
    from derender.svg.render import FetchRefused, refuse_fetch

    with pytest.raises(FetchRefused, match="file:///etc/passwd"):
        refuse_fetch("file:///etc/passwd", "image/svg+xml")


def test_the_watch_sees_what_plain_cairosvg_reads(canaries):
    """The audit-hook check can fail: cairosvg without the policy, told to trust the
    document, opens the canary the `use-external-file` attack names."""
    import cairosvg

    global _watching
    document = Path(__file__).parent / "attacks" / "sandbox_violation--use-external-file.svg"
    CANARY.with_suffix(".svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><circle id="a" r="3"/></svg>'
    )
    _events.clear()
    _watching = True
    try:
        cairosvg.svg2png(document.read_bytes(), unsafe=True)
    finally:
        _watching = False
        CANARY.with_suffix(".svg").write_text(CANARY_TEXT)
    assert any(str(CANARY) in args for _, args in _events), _events
