"""Fixtures for the sandbox tests: a Workbench 64 px frame and a short deadline; the
attack corpus loader (``attacks/*.txt``) and the known-holes list (``attacks/HOLES.txt``).

A test that takes an ``attack`` (in-process runner), ``escaped_attack`` (a simulated
escape: raw Python) or ``farm_attack`` (through a real farm) argument is parametrized with
the corpus scripts of that runner; a script named in ``HOLES.txt`` is a strict xfail, so
the lead deletes its line when the fix lands (and the suite fails until they do).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from derender.protocol.errors import OUTCOMES
from derender.scenes.frame import FrameSpec
from derender.scenes.model import Scene

SPEC = FrameSpec(width=64, height=64, engine="workbench", samples=8)
DEADLINE_S = 0.3

CORPUS_DIR = Path(__file__).with_name("attacks")
HOLES_FILE = CORPUS_DIR / "HOLES.txt"
RUNNERS = ("process", "escaped", "farm")
_HEADER = re.compile(r"### (?P<name>[a-z0-9_]+) (?P<expected>[a-z_]+)(?: (?P<runner>[a-z]+))?$")
_PROBE = re.compile(r"^# probe: (?P<expr>.+)$", re.MULTILINE)


def read_near_misses(
    make: Callable[[random.Random], str], read: Callable[[str], Any], runs: int
) -> tuple[list[tuple[str, Any]], int]:
    """``runs`` sources that ``make`` draws from one seeded stream, given to a reader:
    (source, what ``read`` made of it) for each it accepted, and how many it refused."""
    rng = random.Random(20261203)
    accepted, refused = [], 0
    for _ in range(runs):
        source = make(rng)
        program = read(source)
        if program is None:
            refused += 1
        else:
            accepted.append((source, program))
    return accepted, refused


@dataclass(frozen=True)
class Attack:
    """One corpus script and the outcome a correct sandbox gives it."""

    name: str
    cls: str  # the corpus file it came from: the attack class
    expected: str
    script: str
    runner: str  # "process" (in-process Service.step), "escaped" (raw Python), "farm"
    # A raw Python expression (names: bpy, assets) that must read the same before the
    # script and after a later request: what the script tried to change for good.
    probe: str | None = None


def load_corpus(path: Path) -> list[Attack]:
    """The scripts of one corpus file: a header ``### <name> <expected> [<runner>]`` (the
    runner defaults to ``process``), then the script up to the next header. Comment lines
    that follow a header say what the script targets; ``# probe: <expr>`` names a probe."""
    attacks: list[Attack] = []
    for block in path.read_text(encoding="utf-8").split("\n### ")[1:]:
        header, _, script = block.partition("\n")
        match = _HEADER.match("### " + header.strip())
        if match is None:
            raise ValueError(f"{path.name}: bad corpus header {header!r}")
        expected, runner = match["expected"], match["runner"] or "process"
        if expected not in OUTCOMES or runner not in RUNNERS:
            raise ValueError(f"{path.name}: {match['name']}: bad outcome or runner {header!r}")
        probe = _PROBE.search(script)
        attacks.append(
            Attack(
                match["name"],
                path.stem,
                expected,
                script.strip("\n") + "\n",
                runner,
                probe["expr"] if probe else None,
            )
        )
    return attacks


def _special() -> list[Attack]:
    """Two scripts that cannot live in a text file: a NUL byte and a 600 kB script."""
    return [
        Attack("nul_byte", "classic", "syntax_error", "x = 1\x00", "process"),
        Attack("script_too_large", "classic", "resource_limit", "x = 1\n" * 100_000, "process"),
    ]


def full_corpus() -> list[Attack]:
    """Every script of every class, in file order."""
    out = [
        a
        for path in sorted(CORPUS_DIR.glob("*.txt"))
        if path != HOLES_FILE
        for a in load_corpus(path)
    ]
    return out + _special()


def known_holes() -> dict[str, str]:
    """Script name -> what it does today (HOLES.txt: ``<name> <observed>`` per line)."""
    holes: dict[str, str] = {}
    for line in HOLES_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, observed = line.partition(" ")
            holes[name] = observed.strip()
    return holes


_FIXTURE_RUNNER = {"attack": "process", "escaped_attack": "escaped", "farm_attack": "farm"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    holes = known_holes()
    for fixture, runner in _FIXTURE_RUNNER.items():
        if fixture not in metafunc.fixturenames:
            continue
        params = []
        for a in full_corpus():
            if a.runner != runner:
                continue
            marks = []
            if a.name in holes:
                marks.append(pytest.mark.xfail(strict=True, reason=f"known hole: {holes[a.name]}"))
            params.append(pytest.param(a, id=f"{a.cls}-{a.name}", marks=marks))
        metafunc.parametrize(fixture, params)


@pytest.fixture(scope="session")
def attack_corpus() -> list[Attack]:
    """Every corpus script (all classes, all runners)."""
    return full_corpus()


@pytest.fixture(scope="session")
def attack_holes() -> dict[str, str]:
    return known_holes()


@pytest.fixture(scope="session")
def frame_spec() -> FrameSpec:
    """The test frame (what ``service`` renders in)."""
    return SPEC


@pytest.fixture(scope="module")
def service():
    """A Service on the test frame (short deadline), shared by the module's tests."""
    from derender.addon.sandbox.limits import ScriptLimits
    from derender.addon.service import Service

    return Service(SPEC, ScriptLimits(deadline_s=DEADLINE_S))


@pytest.fixture(scope="module")
def empty_image(service) -> np.ndarray:
    """The render of the empty frame, taken before any script ran."""
    return service.render_scene(Scene(()), masks=False).image


@pytest.fixture
def run(service):
    """Run a script in the sandbox on the frame (no render); the frame is reset after."""
    from derender.addon.sandbox.limits import ScriptLimits
    from derender.addon.sandbox.runner import run_script

    built_frame = service.built_frame

    def go(script: str, seed: int = 0, **limits):
        built_frame.reset(SPEC)
        return run_script(script, built_frame, ScriptLimits(deadline_s=DEADLINE_S, **limits), seed)

    yield go
    built_frame.reset(SPEC)
