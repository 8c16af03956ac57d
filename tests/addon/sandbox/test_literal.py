"""Literal DSL programs: read as data by a line grammar that must mean what Python means.

The oracle is Python itself: whatever the reader accepts must parse, and its calls must
be the ones the parsed tree holds, value for value. Then the runner: a literal program
and the same program compiled (one more line makes it code) give the same outcome,
message, line and objects, and only the compiled one leaves the frame distrusted.
"""

from __future__ import annotations

import ast
import math
import random

import pytest
from derender.addon.sandbox.literal import LiteralCall, literal_program
from derender.scenes.cheatsheet import EXAMPLE_DSL
from derender.scenes.generator import GeneratorConfig, generate_scene
from derender.scenes.programs import dsl_program

from .conftest import read_near_misses


def _oracle(source: str) -> tuple[LiteralCall, ...]:
    """The calls Python reads in ``source`` (which must be literal calls only)."""

    def value(node: ast.expr) -> object:
        if isinstance(node, ast.UnaryOp):
            number = value(node.operand)
            return -number if isinstance(node.op, ast.USub) else +number  # type: ignore[operator]
        assert isinstance(node, ast.Constant)
        return node.value

    calls = []
    for statement in ast.parse(source).body:
        assert isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
        call = statement.value
        assert isinstance(call.func, ast.Name)
        keywords = tuple((str(k.arg), value(k.value)) for k in call.keywords)
        args = tuple(value(a) for a in call.args)
        calls.append(LiteralCall(statement.lineno, call.func.id, args, keywords))  # type: ignore[arg-type]
    return tuple(calls)


def _same(a: tuple[LiteralCall, ...], b: tuple[LiteralCall, ...]) -> bool:
    """Equal, with each value of the same type (1 is not 1.0) and -0.0 not 0.0."""

    def key(v: object) -> object:
        return (type(v), math.copysign(1.0, v) if isinstance(v, float) else None, v)

    def norm(c: LiteralCall) -> tuple:
        return (c.line, c.function, [key(v) for v in c.args], [(k, key(v)) for k, v in c.keywords])

    return [norm(c) for c in a] == [norm(c) for c in b]


def test_generated_dsl_programs_are_literal_and_read_as_python_reads_them() -> None:
    program = literal_program(EXAMPLE_DSL)  # what the prompt shows the policy
    assert program is not None and _same(program.calls, _oracle(EXAMPLE_DSL))
    config = GeneratorConfig(min_objects=1, max_objects=10)
    for index in range(30):
        source = dsl_program(generate_scene(7, index, config))
        program = literal_program(source)
        assert program is not None, source
        assert len(program.calls) == len(generate_scene(7, index, config).objects)
        assert _same(program.calls, _oracle(source))


_FRAGMENTS = [
    "add_object", "clear", "print", "(", ")", ",", "=", " ", "\t", "x", "y", "shape", "_x",
    "if", "True", "None", "'cube'", '"red"', "'a\\n'", "'#'", "'", '"', "1", "-", "+", "0",
    "007", "00", "1.5", ".5", "5.", "1e3", "1E-3", "1_0", "0x1", "2j", "-0.0", "# c", ";",
    "*", "**", "[", "]", "\\", "\r", "\f", "\x00", "\n", "\n    ", "é", "\ud800", "f'x'",
    "b'x'", "1+2", "...", "lambda", ":",
]  # fmt: skip


def _random_source(rng: random.Random) -> str:
    """Mostly well-formed calls with a fragment or two spliced in: near misses."""
    lines = []
    for _ in range(rng.randint(1, 4)):
        parts = [rng.choice(["add_object", "clear", "add_object ", "# note", ""]), "("]
        for i in range(rng.randint(0, 3)):
            if i:
                parts.append(rng.choice([",", ", ", " ,"]))
            if rng.random() < 0.5:
                parts.append(
                    rng.choice(["x", "shape", "y ", "rotation"]) + rng.choice(["=", " = "])
                )
            parts.append(rng.choice(["1", "-2.5", "'cube'", '"red"', ".5", "1e3", "- 3", "0"]))
        parts.append(rng.choice([")", ",)", " )", ") # end"]))
        for _ in range(rng.randint(0, 2)):
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(_FRAGMENTS))
        lines.append("".join(parts))
    return "\n".join(lines)


def test_whatever_the_reader_accepts_python_parses_to_the_same_calls() -> None:
    accepted, refused = read_near_misses(_random_source, literal_program, 20000)
    for source, program in accepted:
        try:
            expected = _oracle(source)
        except (SyntaxError, ValueError, AssertionError) as exc:
            pytest.fail(f"read as literal, but Python reads it otherwise ({exc!r}): {source!r}")
        assert _same(program.calls, expected), source
    assert len(accepted) > 500 and refused > 500  # both sides of the grammar were exercised


@pytest.mark.parametrize(
    "source",
    [
        "x = 1", "add_object(*a)", "add_object(**k)", "add_object(x=1 + 2)", "print(1)",
        "  clear()", "add_object(x=1,\n  y=2) z", "add_object(True)", "add_object(None)",
        "add_object('a\\n')", "add_object(f'x')", "add_object(b'x')", "add_object(1j)",
        "add_object(0x10)", "add_object(1_0)", "clear(); clear()", "add_object(_x=1)",
        "add_object(x=1, 2)", "add_object(x=1, x=2)", "add_object(007)", "clear()\r\nclear()",
        "clear()\x00", "add_object(--1)", "add_object('a' 'b')", "clear(,)", "add_object(if=1)",
        "add_object(x)", "clevr_material('metal', 'red')", "'docstring'", "clear()\\\n",
        "add_object(''' ''')", "add_object(x=1)[0]", "add_object(x=1).name",
        "clear()  # \rimport os", "add_object(x=" + "9" * 5000 + ")",
    ],
)  # fmt: skip
def test_anything_more_than_literal_calls_is_left_to_the_compiler(source: str) -> None:
    assert literal_program(source) is None


def test_blank_lines_and_comments_are_nothing_and_a_call_may_span_lines() -> None:
    source = (
        "# a scene\n\n    # indented comment\n\t\nclear()  # why\nadd_object('cube', x=-1)\n"
        "add_object(\n    'cube',  # shape\n\n    x = 2,\n)\nclear()"
    )
    program = literal_program(source)
    assert program is not None
    assert _same(program.calls, _oracle(source))
    assert [c.line for c in program.calls] == [5, 6, 7, 12]
    assert literal_program("") == literal_program("# only a comment\n")


_SCENE = (
    "add_object('cube', 'large', 'metal', 'red', 1.0, -0.5, rotation=0.3)\n"
    "add_object(shape='sphere', size='small', material='rubber', color='cyan', x=-1, y=2)\n"
)


@pytest.mark.parametrize(
    ("program", "limits", "expected"),
    [
        (_SCENE, {}, ("ok", None, 2)),
        (_SCENE + "add_object('torus', 'small', 'metal', 'red', 0, 0)\n", {},
         ("runtime_error", 3, 2)),
        (_SCENE + "\n# a comment\nadd_object('cube', 'small', 'metal', 'red', x='a', y=0)\n", {},
         ("runtime_error", 5, 2)),
        (_SCENE + "add_object('cube', 'small', 'metal', 'red', 0, 0, spin=1)\n", {},
         ("runtime_error", 3, 2)),
        (_SCENE + "add_object('cube')\n", {}, ("runtime_error", 3, 2)),
        (_SCENE + "clear()\n" + _SCENE, {}, ("ok", None, 2)),
        (_SCENE + _SCENE, {"max_objects": 3}, ("resource_limit", 4, 3)),
        ("", {}, ("ok", None, 0)),
    ],
    ids=["ok", "bad_shape", "bad_type", "bad_keyword", "missing", "clear", "limit", "empty"],
)  # fmt: skip
def test_a_literal_program_runs_as_its_compiled_self(
    run, service, program, limits, expected
) -> None:
    """Same outcome, message, line and objects; only compiled code distrusts the frame."""

    def observed(source: str) -> tuple:
        outcome, session = run(source, **limits)
        made = [
            (obj.name, shape, tuple(obj.location), tuple(obj.scale), obj.active_material.name)
            for obj, shape in session.data.live_objects()
        ]
        return (outcome.outcome, outcome.message, outcome.line, outcome.stdout, made)

    assert literal_program(program) is not None
    literal = observed(program)
    assert service.built_frame.intact
    compiled = observed(program + "nothing = 0\n")
    assert not service.built_frame.intact
    assert literal == compiled
    assert (literal[0], literal[2], len(literal[4])) == expected
