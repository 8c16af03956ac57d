"""Scripts of one-line statements, compiled a line at a time, each distinct line once.

What an LLM writes in the bpy dialect is mostly straight-line code, one statement per
line, and most of its lines recur from script to script (``obj = bpy.context.object``,
``mod.segments = 4``) while a few carry new numbers. Such a script is compiled here line
by line, each line by the one policy pass (:mod:`.rewrite`) and ``compile``, exactly as a
whole script is compiled, and each line's code is kept by its text: a new script costs
the lines it has not sent before, not the whole parse, pass and compile.

Why a line compiled alone means what it means in its script: Python's tokenizer starts
every line of a script in the state the previous one ended in. Line 1 starts fresh, and a
line that compiles alone as a module of simple statements (no block, no backslash at its
end, no bracket or string left open, no indentation) ends in the fresh state again, so by
induction each line of a script whose lines all do is one statement (or several, joined by
``;``) read exactly as in the whole. A line that continues a statement (``else:``,
``except:``, a decorated ``def``) does not compile alone. The code of a line is the
module code of that line with its line number set, so tracebacks, and the line an error
is reported on, are the whole script's.

A script is read this way only when every line is such a line whose pass needs nothing
from the rest of the script: no ``print``/``printed`` (the pass gives the module one
collector), no nested code (a lambda or comprehension has line numbers of its own), and
no ``\\r`` or NUL anywhere (Python splits lines at ``\\r`` too; NUL fails the whole
script). Anything else is compiled whole (:mod:`.policy`), which is also where every
refusal gets its message: a line that does not compile alone only sends its script there.
"""

from __future__ import annotations

import ast
import re
from collections import OrderedDict
from dataclasses import dataclass
from types import CodeType

from .rewrite import Violations, compile_module

# The statements a line may hold after the pass (which makes imports and augmented
# assignments plain ones): the simple ones; blocks and ``global`` span a script.
_SIMPLE = (ast.Expr, ast.Assign, ast.Pass, ast.Delete, ast.Assert, ast.Raise)
# An indented line that is not blank or a comment: a block's body, or a continuation
# (checked first, before any line is compiled; an indented first line fails alone).
_INDENTED_CODE = re.compile(r"\n[ \t]+[^ \t#\n]")
# Distinct lines kept, and the longest kept: a line's code grows with it, and a worker
# serves many clients (at most ~16 MB of them). A script adds at most LINE_NEW of its
# lines: one script cannot flush the lines that other clients' scripts share.
LINE_CAPACITY, LINE_CHARS, LINE_NEW = 4096, 400, 512
_NOTHING: tuple[()] = ()  # a blank or comment line: read, nothing to run


@dataclass(frozen=True)
class LineProgram:
    """A script read as one-line statements: each line's code, in order, with its line
    number; the runner runs them one after another in one namespace."""

    codes: tuple[CodeType, ...]


# By line: its code, _NOTHING, or None (it does not compile alone).
_LINES: OrderedDict[str, CodeType | tuple[()] | None] = OrderedDict()


def line_program(source: str) -> LineProgram | None:
    """``source`` as a :class:`LineProgram`, or None if a line of it does not compile alone
    (see the module docstring)."""
    if "\r" in source or "\0" in source or _INDENTED_CODE.search(source):
        return None
    codes = []
    added = 0
    for number, text in enumerate(source.split("\n"), 1):
        if text in _LINES:
            _LINES.move_to_end(text)
            code = _LINES[text]
        else:
            code = _compile_line(text)
            if len(text) <= LINE_CHARS and added < LINE_NEW:
                added += 1
                _LINES[text] = code
                if len(_LINES) > LINE_CAPACITY:
                    _LINES.popitem(last=False)
        if code is None:
            return None
        if isinstance(code, CodeType):
            codes.append(code.replace(co_firstlineno=number))
    return LineProgram(tuple(codes))


def _compile_line(text: str) -> CodeType | tuple[()] | None:
    """The module code of one line, compiled alone; ``_NOTHING`` if it holds no
    statement; None if it cannot stand alone."""
    try:
        code, tree, prints = compile_module(text)
    except (SyntaxError, ValueError, Violations, RecursionError, MemoryError):
        return None
    if not tree.body:
        return _NOTHING
    simple = all(isinstance(statement, _SIMPLE) for statement in tree.body)
    if prints or not simple or any(isinstance(const, CodeType) for const in code.co_consts):
        return None
    return code
