"""The attack suite: hostile or broken scripts, each with its typed outcome.

After every script the same process renders the empty frame pixel-identically (nothing
leaked) unless the result asked for the worker to be recycled. The scripts run with a
fresh empty working directory and must create no file anywhere they aim at.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from derender.scenes.model import Scene

CORPUS = Path(__file__).with_name("attacks.txt")
# Files the file-touching attacks aim at (relative ones land in the test's cwd).
TARGETS = ("/tmp/derender-attack.blend", "/tmp/derender-attack.png", "attack.blend", "attack.png")


def load_corpus(path: Path) -> list[tuple[str, str, str]]:
    """(name, script, expected outcome) from the ``### name outcome`` corpus format."""
    attacks: list[tuple[str, str, str]] = []
    for block in path.read_text(encoding="utf-8").split("\n### ")[1:]:
        header, _, script = block.partition("\n")
        name, expected = header.split()
        attacks.append((name, script.strip("\n") + "\n", expected))
    return attacks


# Two that cannot live in a text file: a NUL byte and a 600 kB script.
ATTACKS = [
    *load_corpus(CORPUS),
    ("nul_byte", "x = 1\x00", "syntax_error"),
    ("script_too_large", "x = 1\n" * 100_000, "resource_limit"),
]


def test_corpus_is_large_and_unique() -> None:
    names = [name for name, _, _ in ATTACKS]
    assert len(names) >= 40 and len(set(names)) == len(names)


@pytest.fixture(scope="module")
def attack_cwd(tmp_path_factory):
    """An empty working directory for the attacks; it must stay empty."""
    cwd = tmp_path_factory.mktemp("attack-cwd")
    old = os.getcwd()
    os.chdir(cwd)
    yield cwd
    os.chdir(old)


# A generator finalized after its globals were dropped reports an "ignored" NameError.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(("name", "script", "expected"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack(service, empty_image, attack_cwd: Path, name: str, script: str, expected: str):
    existing = {t for t in TARGETS if os.path.exists(t)}
    result = service.step(script, masks=False)
    assert result.outcome == expected, (result.outcome, result.message)
    if expected != "ok":
        assert result.image is None and result.message
    assert result.recycle == (expected == "sandbox_violation")
    # Nothing leaked: the same process renders the empty frame exactly as before.
    after = service.render_scene(Scene(()), masks=False).image
    assert np.array_equal(after, empty_image)
    assert list(attack_cwd.iterdir()) == []
    assert {t for t in TARGETS if os.path.exists(t)} == existing
