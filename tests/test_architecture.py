"""docs/architecture.md stays true: every hop of a step names code that exists.

In the numbered path, a backticked ``path.py`` names a file, and the backticked name
right after it (``Broker._on_client``, ``run_script``) or a later ``Class.method`` in the
same hop names a function, class or method of that file. Each must be defined there.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
_TOKEN = re.compile(r"`([^`]+)`")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


def _hops(text: str) -> list[str]:
    """The numbered items of the 'One step, hop by hop' section, one string each."""
    section = text.split("## One step, hop by hop", 1)[1].split("\n## ", 1)[0]
    return [m.group(0) for m in re.finditer(r"(?ms)^\d+\. .*?(?=^\d+\. |^$|\Z)", section)]


def _defined(path: Path) -> set[str]:
    """``name`` for each top-level def and class, ``Class.method`` for each method."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    return names


def _references(hop: str) -> list[tuple[str, str]]:
    """(file, name) pairs a hop names."""
    out: list[tuple[str, str]] = []
    current: str | None = None
    after_path = False
    for token in _TOKEN.findall(hop):
        if token.endswith(".py"):
            current, after_path = token, True
            continue
        qualified = "." in token and token[:1].isupper()
        if current is not None and _NAME.fullmatch(token) and (after_path or qualified):
            out.append((current, token))
        after_path = False
    return out


def test_the_path_of_a_step_is_numbered_and_every_hop_names_real_code() -> None:
    hops = _hops(DOC.read_text())
    assert len(hops) >= 15
    missing = []
    for number, hop in enumerate(hops, 1):
        assert hop.startswith(f"{number}. "), hop[:40]
        refs = _references(hop)
        assert refs, f"hop {number} names no code"
        for file, name in refs:
            path = ROOT / file
            if not path.is_file() or name not in _defined(path):
                missing.append(f"hop {number}: {file} {name}")
    assert not missing, missing


def test_a_renamed_function_is_caught() -> None:
    hop = "1. `farm/broker.py` `Broker._on_client` then `Broker._no_such_method`."
    refs = _references(hop)
    assert refs == [
        ("farm/broker.py", "Broker._on_client"),
        ("farm/broker.py", "Broker._no_such_method"),
    ]
    defined = _defined(ROOT / "farm" / "broker.py")
    assert [name in defined for _, name in refs] == [True, False]
