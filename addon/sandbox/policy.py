"""Compiling an agent script: parse, one checking and rewriting pass, compile.

The pass (:mod:`.rewrite`) refuses what the policy does not allow and rewrites every
operation a script could abuse into a call of a runtime guard (:mod:`.guards`,
:mod:`.limits`): attribute and item access, writes, iteration and unpacking, imports,
f-strings, starred displays, slice assignment, size-checked operators, ticks in every
loop, function and handler, and exception filters. It is at least as strict as
RestrictedPython's transformer together with the three passes this sandbox used to run
after it, in one walk of the tree instead of four (a 170-line script compiled in ~16 ms
that way, ~3 ms this way).

A script that is only literal DSL calls is not compiled at all: it is read as data
(:mod:`.literal`), and no agent code runs for it. A script of one-line statements is
compiled by the same pass a line at a time, each distinct line once (:mod:`.lines`).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from types import CodeType

from .lines import LineProgram, line_program
from .literal import LiteralProgram, literal_program
from .rewrite import Violations, compile_module


@dataclass(frozen=True)
class CompileFailure(Exception):
    """The script did not compile; ``outcome`` is syntax_error, sandbox_violation or
    resource_limit (nesting too deep for the parser)."""

    outcome: str
    message: str
    line: int | None

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def compile_script(source: str, max_bytes: int) -> CodeType | LiteralProgram | LineProgram:
    """Compile an agent script for the sandbox (whole, or a line at a time: a
    :class:`.lines.LineProgram`), or read it as a :class:`.literal.LiteralProgram` if that
    is all it is; raise :class:`CompileFailure` if it does not compile.

    Raises ``ValueError`` (a resource limit, mapped by the runner) when the script is
    larger than ``max_bytes``.
    """
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ValueError(f"script is {size} bytes (limit {max_bytes})")
    try:
        with warnings.catch_warnings():  # the agent's SyntaxWarnings are not the worker's log
            warnings.simplefilter("ignore")
            return _compile(source)
    except (RecursionError, MemoryError):  # the parser and the pass recurse
        raise CompileFailure("resource_limit", "the script nests too deeply", None) from None


# Code objects are immutable and every guard is looked up in the run's globals, so a
# compiled script can be reused; RL batches resubmit identical scripts often.
@functools.lru_cache(maxsize=256)
def _compile(source: str) -> CodeType | LiteralProgram | LineProgram:
    program = literal_program(source) or line_program(source)
    if program is not None:
        return program
    try:
        return compile_module(source)[0]
    except SyntaxError as exc:  # the parser's, or only the compiler's (`return` outside a def)
        raise CompileFailure("syntax_error", str(exc.msg), exc.lineno) from None
    except ValueError as exc:  # e.g. NUL bytes in the source
        raise CompileFailure("syntax_error", str(exc), None) from None
    except Violations as exc:
        line, message = exc.found[0]
        raise CompileFailure("sandbox_violation", message, line) from None
