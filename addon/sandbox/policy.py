"""Compiling an agent script: parse, rewrite, RestrictedPython, inject the runtime guards.

Three passes over the AST:

1. ``_AugmentedTargets`` (before RestrictedPython, which refuses ``a.b += c``): rewrite
   augmented assignment to attributes and subscripts as ``t = a; t.b = t.b + c`` so the
   container is evaluated once and both accesses go through the normal guards.
2. ``_Policy`` = RestrictedPython's transformer (``_getattr_``, ``_write_``, ``_getitem_``,
   ``_getiter_``, no ``_`` names, no ``except*``, no async …) recording error lines.
3. ``_ImportsAsCalls`` (after RestrictedPython, so it may use ``_`` names): every ``import`` and
   ``from … import`` becomes an assignment from ``_import_(dotted, top)`` /
   ``_import_from_(dotted, name)``, which walk each component through the same guarded
   getattr as ``a.b``. No ``IMPORT_NAME``/``IMPORT_FROM`` opcode is left in agent code:
   CPython's ``IMPORT_FROM`` is a plain getattr, and RestrictedPython checks only the
   first character of a dotted name, so ``import bpy._real.x as y`` would reach anything.
4. ``_SizedBuilds``: what builds a string or a list from parts the script controls goes
   through a size check first: f-strings (``_fstring_``, each field through ``_format_``,
   which also checks the format spec), starred parts of list/tuple/set displays
   (``_starred_``: ``[*l, *l]`` doubles) and slice assignment (``_setslice_``:
   ``l[len(l):] = l`` doubles).
5. ``_inject_guards``: ``_tick_()`` at the top
   of every loop body, function, lambda, ``except`` handler and ``finally``; every handler
   type goes through ``_exc_`` (bare ``except:`` becomes ``except Exception``) so sandbox
   aborts, which are not ``Exception`` subclasses, can never be caught; ``**``, ``*``,
   ``<<``, ``%``, ``+`` and ``//`` go through size-checked helpers.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from types import CodeType
from typing import Any

from RestrictedPython import RestrictingNodeTransformer
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

AGENT_FILENAME = "<agent>"
# Any augmented-assignment operator (also matches <= and >=: then the pass just runs).
_MAYBE_AUGMENTED = re.compile(r"[-+*/%@&|^<>]=")


@dataclass(frozen=True)
class CompileFailure(Exception):
    """The script did not compile; ``outcome`` is syntax_error, sandbox_violation or
    resource_limit (nesting too deep for the parser)."""

    outcome: str
    message: str
    line: int | None

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class _AugmentedTargets(ast.NodeTransformer):
    """``a.b op= c`` / ``a[i] op= c`` -> temporaries + plain assignment (``a``, ``i`` once)."""

    def __init__(self) -> None:
        self.count = 0

    def _temp(self, value: ast.expr, node: ast.AST, out: list[ast.stmt]) -> ast.Name:
        # "aug·N" is not a valid identifier, so it cannot clash with agent names.
        name = f"aug·{self.count}"
        self.count += 1
        out.append(ast.copy_location(ast.Assign([ast.Name(name, ast.Store())], value), node))
        return ast.Name(name, ast.Load())

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST | list[ast.stmt]:
        node = self.generic_visit(node)  # type: ignore[assignment]
        target = node.target
        if isinstance(target, ast.Name):
            return node
        out: list[ast.stmt] = []
        base = self._temp(target.value, node, out)  # type: ignore[union-attr]
        if isinstance(target, ast.Attribute):
            load: ast.expr = ast.Attribute(base, target.attr, ast.Load())
            store: ast.expr = ast.Attribute(ast.Name(base.id, ast.Load()), target.attr, ast.Store())
        else:
            assert isinstance(target, ast.Subscript)
            key = self._temp(target.slice, node, out)
            load = ast.Subscript(base, key, ast.Load())
            store = ast.Subscript(
                ast.Name(base.id, ast.Load()), ast.Name(key.id, ast.Load()), ast.Store()
            )
        value = ast.BinOp(load, node.op, node.value)
        out.append(ast.copy_location(ast.Assign([store], value), node))
        for stmt in out:  # RestrictedPython copies locations from these nodes: all need one
            ast.fix_missing_locations(ast.copy_location(stmt, node))
        return out


def refused_name(name: str) -> str | None:
    """Why an attribute (or import component) name is refused, or None if it is allowed.

    One rule for every way a name reaches an object: ``a.b``, ``getattr``, each component
    of ``import a.b.c``, each name of ``from a import b`` and each ``{0.b}`` format field.
    """
    if name.startswith("_"):
        return f"attribute {name!r} is not accessible in the sandbox"
    if name in INSPECT_ATTRIBUTES:
        return f"attribute {name!r} is not accessible in the sandbox"
    return None


# Special methods a script's classes may define, beyond RestrictedPython's own few: the
# ones LLM-written classes use. They run the script's own code, under the same guards,
# when Python calls them; the methods Python calls at surprising times (``__del__``,
# ``__getattr__``, ``__init_subclass__``, ``__set_name__`` ...) stay refused.
SPECIAL_METHODS = frozenset(
    {
        "__init__", "__repr__", "__str__", "__len__", "__iter__", "__next__", "__getitem__",
        "__setitem__", "__contains__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
        "__ge__", "__hash__", "__bool__", "__call__", "__add__", "__sub__", "__mul__",
        "__truediv__", "__neg__", "__abs__",
    }
)  # fmt: skip


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, keeping (line, message) pairs for the outcome, plus a
    check of every component of every imported name and a longer list of the special
    methods a class may define."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.located: list[tuple[int | None, str]] = []

    def error(self, node: ast.AST, info: str) -> None:
        self.located.append((getattr(node, "lineno", None), info))
        super().error(node, info)

    def check_name(
        self, node: ast.AST, name: str | None, allow_magic_methods: bool = False
    ) -> None:
        if allow_magic_methods and name in SPECIAL_METHODS and getattr(node, "col_offset", 0):
            return  # a method of a class (RestrictedPython's own test: not at column 0)
        super().check_name(node, name, allow_magic_methods)  # type: ignore[arg-type]

    def check_import_names(self, node: ast.ImportFrom | ast.Import) -> ast.AST:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                self.error(node, "relative imports are not allowed in the sandbox")
            dotted = [*(node.module or "").split("."), *(a.name for a in node.names)]
        else:
            dotted = [part for a in node.names for part in a.name.split(".")]
        for part in dotted:
            why = refused_name(part)
            if why is not None:
                self.error(node, why)
        return super().check_import_names(node)


class _ImportsAsCalls(ast.NodeTransformer):
    """``import a.b`` -> ``a = _import_("a.b", True)``; ``import a.b as c`` ->
    ``c = _import_("a.b", False)``; ``from a.b import c as d`` ->
    ``d = _import_from_("a.b", "c")`` (see the module docstring)."""

    def _assign(self, target: str, func: str, args: list[object], where: ast.stmt) -> ast.Assign:
        loc = _loc(where)
        consts: list[ast.expr] = [ast.Constant(a, **loc) for a in args]
        value = _call(func, consts, where)
        return ast.Assign([ast.Name(target, ast.Store(), **loc)], value, **loc)

    def visit_Import(self, node: ast.Import) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for alias in node.names:
            if alias.asname:
                out.append(self._assign(alias.asname, "_import_", [alias.name, False], node))
            else:
                top = alias.name.partition(".")[0]
                out.append(self._assign(top, "_import_", [alias.name, True], node))
        return out

    def visit_ImportFrom(self, node: ast.ImportFrom) -> list[ast.stmt]:
        module = node.module or ""
        return [
            self._assign(a.asname or a.name, "_import_from_", [module, a.name], node)
            for a in node.names
        ]


class _SizedBuilds(ast.NodeTransformer):
    """f-strings, starred display parts and slice assignment -> size-checked calls (see
    the module docstring)."""

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.expr:
        self.generic_visit(node)
        parts: list[ast.expr] = []
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                conv = ast.Constant(part.conversion, **_loc(part))
                spec = part.format_spec or ast.Constant("", **_loc(part))
                parts.append(_call("_format_", [part.value, conv, spec], part))
            else:
                parts.append(part)
        return _call("_fstring_", [ast.Tuple(parts, ast.Load(), **_loc(node))], node)

    def _displayed(self, node: ast.List | ast.Tuple | ast.Set) -> ast.expr:
        self.generic_visit(node)
        for part in node.elts:
            if isinstance(part, ast.Starred):
                part.value = _call("_starred_", [part.value], part)
        return node

    visit_List = visit_Tuple = visit_Set = _displayed

    def visit_Assign(self, node: ast.Assign) -> ast.stmt:
        self.generic_visit(node)
        target = node.targets[0]
        if len(node.targets) == 1 and isinstance(target, ast.Subscript):
            cut = target.slice
            if isinstance(cut, ast.Slice):
                none = ast.Constant(None, **_loc(node))
                bounds = [b or none for b in (cut.lower, cut.upper, cut.step)]
                call = _call("_setslice_", [target.value, *bounds, node.value], node)
                return ast.Expr(call, **_loc(node))
        return node


def _loc(where: ast.AST) -> dict[str, Any]:
    return {k: getattr(where, k) for k in ("lineno", "col_offset", "end_lineno", "end_col_offset")}


def _call(name: str, args: list[ast.expr], where: ast.AST) -> ast.Call:
    """``name(*args)`` located at ``where`` (new nodes get a location here, so the tree
    needs no ``fix_missing_locations`` walk afterwards)."""
    loc = _loc(where)
    return ast.Call(ast.Name(name, ast.Load(), **loc), args, [], **loc)


def _tick(where: ast.AST) -> ast.Expr:
    return ast.Expr(_call("_tick_", [], where), **_loc(where))


_BINOP_GUARDS: dict[type[ast.operator], str] = {
    ast.Pow: "_pow_",
    ast.Mult: "_mul_",
    ast.LShift: "_lshift_",
    ast.Mod: "_mod_",  # %-formatting widths
    ast.Add: "_add_",  # s + s doubling
    ast.FloorDiv: "_floordiv_",  # quadratic on huge integers
}


def _is_guarded(value: object) -> bool:
    return isinstance(value, ast.BinOp) and type(value.op) in _BINOP_GUARDS


def _guarded(op: ast.BinOp) -> ast.Call:
    return _call(_BINOP_GUARDS[type(op.op)], [op.left, op.right], op)


def _inject_guards(tree: ast.Module) -> None:
    """Inject ticks, exception-type filters and checked arithmetic (see module doc).

    In place and children first (reversed breadth-first order), so an operand that is
    itself a guarded operation is already rewritten when its parent is.
    """
    for node in reversed(list(ast.walk(tree))):
        if isinstance(node, ast.While | ast.For | ast.FunctionDef):
            node.body.insert(0, _tick(node))
        elif isinstance(node, ast.Lambda):  # lambda: _tick_() or body (_tick_ is None)
            node.body = ast.BoolOp(ast.Or(), [_call("_tick_", [], node), node.body], **_loc(node))
        elif isinstance(node, ast.Try) and node.finalbody:
            node.finalbody.insert(0, _tick(node.finalbody[0]))
        elif isinstance(node, ast.ExceptHandler):
            kind = node.type or ast.Name("Exception", ast.Load(), **_loc(node))
            node.type = _call("_exc_", [kind], node)
            node.body.insert(0, _tick(node))
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if _is_guarded(item):
                        value[i] = _guarded(item)
            elif _is_guarded(value):
                setattr(node, field, _guarded(value))


def compile_script(source: str, max_bytes: int) -> CodeType:
    """Compile an agent script for the sandbox or raise :class:`CompileFailure`.

    Raises ``ValueError`` (a resource limit, mapped by the runner) when the script is
    larger than ``max_bytes``.
    """
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ValueError(f"script is {size} bytes (limit {max_bytes})")
    try:
        return _compile(source)
    except (RecursionError, MemoryError):  # the parser and the AST passes recurse
        raise CompileFailure("resource_limit", "the script nests too deeply", None) from None


# Code objects are immutable and every guard is looked up in the run's globals, so a
# compiled script can be reused; RL batches resubmit identical scripts often.
@functools.lru_cache(maxsize=256)
def _compile(source: str) -> CodeType:
    try:
        tree = ast.parse(source, AGENT_FILENAME, "exec")
    except SyntaxError as exc:
        raise CompileFailure("syntax_error", str(exc.msg), exc.lineno) from None
    except ValueError as exc:  # e.g. NUL bytes in the source
        raise CompileFailure("syntax_error", str(exc), None) from None
    if _MAYBE_AUGMENTED.search(source):  # the pass costs as much as parsing: skip if idle
        tree = _AugmentedTargets().visit(tree)
    policy = _Policy([], [], {})
    tree = policy.visit(tree)
    if policy.located:
        line, message = policy.located[0]
        raise CompileFailure("sandbox_violation", message, line)
    tree = _ImportsAsCalls().visit(tree)
    tree = _SizedBuilds().visit(tree)
    _inject_guards(tree)
    return compile(tree, AGENT_FILENAME, "exec", dont_inherit=True)
