"""Scripts compiled a line at a time (:mod:`derender.addon.sandbox.lines`) mean what the
whole script means.

The oracle is the whole-script path: whatever is read line by line must also compile
whole, to the same statements after the same pass, and run to the same outcome, message,
line and scene. Near misses (blocks, continuations, strings across lines, prints,
lambdas) must be left to the whole compile, which alone words the refusals.
"""

from __future__ import annotations

import ast
import random
import re
import warnings

import pytest
from derender.addon.sandbox import lines
from derender.addon.sandbox.lines import LineProgram, line_program
from derender.addon.sandbox.policy import CompileFailure, compile_script
from derender.addon.sandbox.rewrite import AGENT_FILENAME, Rewriter, Violations
from derender.scenes.generator import GeneratorConfig, generate_scene
from derender.scenes.programs import bpy_program

from .conftest import full_corpus, read_near_misses

_TEMP = re.compile(r"aug·\d+")


def _statements(source: str) -> list[str]:
    """The whole script's statements after the pass, as dumps (temporaries unnumbered:
    each line numbers its own)."""
    tree = Rewriter().module(ast.parse(source, AGENT_FILENAME, "exec"))
    return [_TEMP.sub("aug·", ast.dump(s)) for s in tree.body]


def _same_as_whole(source: str, program: LineProgram) -> None:
    """``program`` (read line by line) is the whole script's pass, statement for statement,
    each line's code on its own line."""
    try:
        whole = _statements(source)
        compile(Rewriter().module(ast.parse(source)), AGENT_FILENAME, "exec")
    except (SyntaxError, ValueError, Violations) as exc:
        pytest.fail(f"read line by line, but the whole script fails ({exc!r}): {source!r}")
    by_line, numbers = [], []
    for number, text in enumerate(source.split("\n"), 1):
        body = _statements(text)
        by_line += body
        numbers += [number] if body else []
    assert by_line == whole, source
    assert [code.co_firstlineno for code in program.codes] == numbers, source


def test_bpy_programs_are_read_line_by_line_as_the_whole_reads_them() -> None:
    config = GeneratorConfig(min_objects=1, max_objects=10)
    for index in range(20):
        source = bpy_program(generate_scene(3, index, config))
        program = line_program(source)
        assert program is not None, source
        _same_as_whole(source, program)
        assert compile_script(source, 100_000) == program  # the policy's first choice


def test_every_corpus_script_read_line_by_line_compiles_whole_to_the_same() -> None:
    read = 0
    for attack in full_corpus():
        program = line_program(attack.script)
        if program is not None:
            read += 1
            _same_as_whole(attack.script, program)
    assert read >= 40  # the corpus has many straight-line scripts: the test means something


_LINES = [
    "obj = bpy.context.object", "obj.location = (1.0, -2.0, 0.35)", "x = 1", "x += 1",
    "a.b += 1", "a[0] -= 2", "import bpy", "import bpy.ops as o", "from bpy import ops",
    "del x", "assert x, 'm'", "raise ValueError('no')", "pass", "x = y = 2", "a, b = 1, 2",
    "f(*a, **k)", "s = f'{x!r:>4}'", "n = 2 ** 8", "# note", "", "   ", "    # indented",
    "x = 1; y = 2", "if x: y = 1", "else: y = 2", "for i in x: f(i)", "while x: pass",
    "def f(): return 1", "@d", "class A: pass", "try: x", "except: pass", "global x",
    "from __future__ import annotations", "print(x)", "y = printed", "f = lambda: 0",
    "v = [i for i in x]", "g = (i for i in x)", "return 1", "yield 1", "await x",
    "_x = 1", "x._y", "exec('1')", "s = '''", "'''", 's = """a', '"""', "x = (1,",
    "2)", "x = 1 + \\", "    y = 2", "x = 1\r", "x = '\x00'", "# \x00", "match x:",
    "    case 1: pass", "with a: pass", "x: int = 1", "nonlocal x", "x = 'é'", "é = 1",
    "x = 1 if y else 2", "x = {'a': 1}", "x = not y", "x := 1", "(x := 1)",
]  # fmt: skip


def _random_source(rng: random.Random) -> str:
    """Lines of the list, sometimes spliced: near misses on both sides."""
    out = []
    for _ in range(rng.randint(1, 6)):
        line = rng.choice(_LINES)
        if rng.random() < 0.2:
            cut = rng.randrange(len(line) + 1)
            line = line[:cut] + rng.choice(_LINES) + line[cut:]
        out.append(line)
    return "\n".join(out)


def test_whatever_is_read_line_by_line_the_whole_reads_the_same() -> None:
    read, refused = read_near_misses(_random_source, line_program, 4000)
    for source, program in read:
        _same_as_whole(source, program)
    assert len(read) > 300 and refused > 300  # both sides were exercised


@pytest.mark.parametrize(
    "source",
    [
        's = """\nimport os\n"""',  # a string across lines holds what looks like code
        "if x: y = 1\nelse: y = 2",  # a statement continued by the next line
        "@d\ndef f(): pass", "x = (1,\n2)", "x = 1 + \\\n2", "for i in x:\n    f(i)",
        "x = 1\r\ny = 2", "x = 1\n# \x00", "print(x)", "y = printed", "f = lambda: 0",
        "v = [i for i in x]", "global x", "x = 1\n    y = 2", "def f(): return 1",
        "from __future__ import annotations", "_x = 1", "return 1", "x: int = 1",
    ],
)  # fmt: skip
def test_what_needs_the_whole_script_is_compiled_whole(source: str) -> None:
    assert line_program(source) is None
    try:
        compiled = compile_script(source, 10_000)
    except CompileFailure:
        return  # refused, by the whole compile's own words
    assert not isinstance(compiled, LineProgram)


def test_compiling_warns_nothing_on_the_workers_stderr() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for source in ("x = 'a'(1)\n", "x = 'b'(1)\nif True:\n    pass\n"):
            compile_script(source, 10_000)  # SyntaxWarnings, by line and whole
    assert caught == []


def test_a_refusal_names_the_line_of_the_whole_script() -> None:
    with pytest.raises(CompileFailure) as failure:
        compile_script("x = 1\ny = 2\n_z = 3\n", 10_000)
    assert (failure.value.outcome, failure.value.line) == ("sandbox_violation", 3)


def test_each_distinct_line_is_compiled_once_and_the_lines_kept_are_bounded(
    monkeypatch,
) -> None:
    monkeypatch.setattr(lines, "_LINES", type(lines._LINES)())
    monkeypatch.setattr(lines, "LINE_CAPACITY", 8)
    compiled: list[str] = []
    real = lines._compile_line

    def counting(text: str):
        compiled.append(text)
        return real(text)

    monkeypatch.setattr(lines, "_compile_line", counting)
    first = line_program("a = 1\nb = a + 1\n")
    again = line_program("\n\nb = a + 1\na = 1")
    assert first is not None and again is not None
    assert compiled == ["a = 1", "b = a + 1", ""]  # the second script's lines were known
    assert [c.co_firstlineno for c in again.codes] == [3, 4]
    for i in range(20):
        line_program(f"x = {i}")
    assert len(lines._LINES) == 8
    monkeypatch.setattr(lines, "LINE_NEW", 3)
    many = line_program("\n".join(f"y = {i}" for i in range(6)))
    assert many is not None and len(many.codes) == 6  # all run, 3 of them kept
    assert sum(key.startswith("y = ") for key in lines._LINES) == 3
    long = f"x = {'1' * lines.LINE_CHARS}"  # compiled, not kept
    assert line_program(long) is not None and long not in lines._LINES


def test_a_line_program_runs_as_the_whole_script_runs(service) -> None:
    """Same outcome, message, line and scene as the same script compiled whole (a block
    at its end makes it so)."""
    config = GeneratorConfig(min_objects=3, max_objects=3)
    program = bpy_program(generate_scene(5, 1, config))
    block = "\nif True:\n    pass\n"
    cases = [
        program,
        program + "\nundefined_name\n",
        program + "\nbpy.context.object.location = (1.0, 2.0)\n",
        program + "\nbpy.context.object.name = 'x'\nbpy.context.object._real\n",
        "import bpy\n\nbpy.ops.mesh.primitive_cube_add(size=2.0)\nraise ValueError('gives up')\n",
    ]
    for source in cases:
        by_lines = service.step(source, masks=False, render=False)
        whole = service.step(source + block, masks=False, render=False)
        if "_real" not in source:  # that one is refused before it runs, by the whole compile
            assert isinstance(compile_script(source, 100_000), LineProgram)
        assert (by_lines.outcome, by_lines.message, by_lines.line) == (
            whole.outcome, whole.message, whole.line,
        ), source  # fmt: skip
        assert by_lines.scene == whole.scene
    assert service.step(cases[1], masks=False, render=False).line == program.count("\n") + 2
