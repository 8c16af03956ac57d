"""DSL programs of literal calls, read as data: no agent code runs for them.

What a policy writes in the CLEVR DSL (and what :func:`scenes.programs.dsl_program`
gives) is a list of top-level ``add_object(...)`` calls whose arguments are literals,
perhaps a ``clear()``. Such a program needs no Python to run: :mod:`.policy` reads it as a
:class:`LiteralProgram`, and the runner calls the DSL's own functions
(:func:`.dsl.dsl_namespace`) with its values, the same functions a compiled script would
call, so the outcome, the message and the line are the same.

Since no agent code runs, nothing the program does reaches beyond what those trusted
functions do: the step needs no check of the frame (:attr:`.frame.BuiltFrame.intact`).

The reader is a grammar, a strict subset of Python's with the same meaning (reading 10
lines with it costs less than :func:`ast.parse` alone). Each line
is blank, a comment, or the start of one call at the line's start: ``add_object`` or
``clear``, then arguments, each an optional ``name=`` (an ASCII name, neither a keyword
nor a ``_`` name) and a value: a quoted string with no backslash, quote or control
character in it, or a decimal int or float with an optional sign, no ``_``; keywords
after positionals, none repeated. Inside the parentheses, newlines and comments may come
between the parts, as Python allows; the call's line is the line it starts on, as
Python's tracebacks say. Anything else (a name, a loop, an expression, another function,
``*args``, a second statement on the line) is compiled and run in the sandbox like every
other script.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from .names import refused_name

Value = str | int | float

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INT = r"0+|[1-9][0-9]*"  # Python refuses 007 (but not 00)
_FLOAT = r"(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+"
# Quoted: no backslash (escapes), no control characters, no surrogates (the source must
# encode to UTF-8 to parse).
_STRING = r"'[^'\\\x00-\x1f\x7f\ud800-\udfff]*'|\"[^\"\\\x00-\x1f\x7f\ud800-\udfff]*\""
_VALUE = rf"[-+]?[ \t]*(?:{_FLOAT}|{_INT})|{_STRING}"
# To the line's end (never a shorter match that leaves a ")" of the comment to the call);
# tabs only: \r and \f end a line too.
_COMMENT = r"#[^\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]*(?=\n|\Z)"
# Between the parts of a call, where Python joins the lines: spaces, newlines, comments.
_GAP = rf"[ \t\n]*(?:{_COMMENT}[ \t\n]*)*"
_CALL_RE = re.compile(r"(add_object|clear)[ \t]*\(", re.ASCII)  # at a line's start
_ARG_RE = re.compile(rf"{_GAP}(?:({_NAME}){_GAP}={_GAP})?({_VALUE}){_GAP}(,?)", re.ASCII)
_END_RE = re.compile(rf"{_GAP}\)[ \t]*(?:{_COMMENT})?(?:\n|\Z)", re.ASCII)
_BLANK_RE = re.compile(rf"[ \t]*(?:{_COMMENT})?(?:\n|\Z)", re.ASCII)  # may be indented
_INT_RE = re.compile(rf"[-+]?[ \t]*(?:{_INT})", re.ASCII)


@dataclass(frozen=True)
class LiteralCall:
    """One statement: ``function(*args, **dict(keywords))`` on ``line``."""

    line: int
    function: str
    args: tuple[Value, ...]
    keywords: tuple[tuple[str, Value], ...]


@dataclass(frozen=True)
class LiteralProgram:
    """A script that is only :class:`LiteralCall` statements, in order."""

    calls: tuple[LiteralCall, ...]


class _NotLiteral(Exception):
    """The source holds something that only Python could read."""


def _value(text: str) -> Value:
    """A literal argument's value: a quoted string, or a decimal number and its sign."""
    if text[0] in "'\"":
        return text[1:-1]
    sign, digits = (-1 if text[0] == "-" else 1), text.lstrip("+- \t")
    try:  # int(): Python's own limit on digits is the parser's too
        number: int | float = int(digits) if _INT_RE.fullmatch(text) else float(digits)
    except ValueError:
        raise _NotLiteral from None
    return -number if sign < 0 else number


def _call(source: str, pos: int, line: int) -> tuple[LiteralCall | None, int]:
    """The call that starts at ``pos``, the start of line ``line``, and where it ends
    (after its newline); None for a blank or comment line."""
    head = _CALL_RE.match(source, pos)
    if head is None:
        blank = _BLANK_RE.match(source, pos)
        if blank is None:
            raise _NotLiteral
        return None, blank.end()
    args: list[Value] = []
    keywords: dict[str, Value] = {}
    pos = head.end()
    while (end := _END_RE.match(source, pos)) is None:
        match = _ARG_RE.match(source, pos)
        if match is None:
            raise _NotLiteral
        name, text, comma = match.groups()
        value = _value(text)
        if name is None:
            if keywords:  # a positional after a keyword: a SyntaxError
                raise _NotLiteral
            args.append(value)
        elif name in keywords or keyword.iskeyword(name) or refused_name(name) is not None:
            raise _NotLiteral  # repeated (a SyntaxError), a keyword, a refused name
        else:
            keywords[name] = value
        pos = match.end()
        if not comma:
            if (end := _END_RE.match(source, pos)) is None:
                raise _NotLiteral  # two arguments with no comma between them
            break
    return LiteralCall(line, head.group(1), tuple(args), tuple(keywords.items())), end.end()


def literal_program(source: str) -> LiteralProgram | None:
    """``source`` as a :class:`LiteralProgram`, or None if it is anything more."""
    calls = []
    pos, line = 0, 1
    try:
        while pos < len(source):
            call, end = _call(source, pos, line)
            if call is not None:
                calls.append(call)
            line += source.count("\n", pos, end)
            pos = end
    except _NotLiteral:
        return None
    return LiteralProgram(tuple(calls))
