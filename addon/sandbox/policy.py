"""Compiling an agent script: parse, rewrite, RestrictedPython, inject the runtime guards.

Three passes over the AST:

1. ``_AugmentedTargets`` (before RestrictedPython, which refuses ``a.b += c``): rewrite
   augmented assignment to attributes and subscripts as ``t = a; t.b = t.b + c`` so the
   container is evaluated once and both accesses go through the normal guards.
2. ``_Policy`` = RestrictedPython's transformer (``_getattr_``, ``_write_``, ``_getitem_``,
   ``_getiter_``, no ``_`` names, no ``except*``, no async …) recording error lines.
3. ``_Guards`` (after RestrictedPython, so it may use ``_`` names): ``_tick_()`` at the top
   of every loop body, function, lambda, ``except`` handler and ``finally``; every handler
   type goes through ``_exc_`` (bare ``except:`` becomes ``except Exception``) so sandbox
   aborts, which are not ``Exception`` subclasses, can never be caught; ``**``, ``*`` and
   ``<<`` go through size-checked helpers.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from types import CodeType

from RestrictedPython import RestrictingNodeTransformer

AGENT_FILENAME = "<agent>"


@dataclass(frozen=True)
class CompileFailure(Exception):
    """The script did not compile; ``outcome`` is syntax_error or sandbox_violation."""

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
        for stmt in out:
            ast.fix_missing_locations(ast.copy_location(stmt, node))
        return out


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, keeping (line, message) pairs for the outcome."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.located: list[tuple[int | None, str]] = []

    def error(self, node: ast.AST, info: str) -> None:
        self.located.append((getattr(node, "lineno", None), info))
        super().error(node, info)


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Name(name, ast.Load()), list(args), [])


def _tick() -> ast.Expr:
    return ast.Expr(_call("_tick_"))


_BINOP_GUARDS: dict[type[ast.operator], str] = {
    ast.Pow: "_pow_",
    ast.Mult: "_mul_",
    ast.LShift: "_lshift_",
}


class _Guards(ast.NodeTransformer):
    """Inject ticks, exception-type filters and checked arithmetic (see module doc)."""

    def _tick_body(self, body: list[ast.stmt], node: ast.AST) -> list[ast.stmt]:
        tick = ast.copy_location(_tick(), node)
        return [ast.fix_missing_locations(tick), *body]

    def visit_While(self, node: ast.While) -> ast.AST:
        self.generic_visit(node)
        node.body = self._tick_body(node.body, node)
        return node

    visit_For = visit_While  # type: ignore[assignment]

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        node.body = self._tick_body(node.body, node)
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        self.generic_visit(node)
        # lambda args: _tick_() or body   (_tick_ returns None)
        node.body = ast.BoolOp(ast.Or(), [_call("_tick_"), node.body])
        ast.fix_missing_locations(ast.copy_location(node.body, node))
        return node

    def visit_Try(self, node: ast.Try) -> ast.AST:
        self.generic_visit(node)
        if node.finalbody:
            node.finalbody = self._tick_body(node.finalbody, node.finalbody[0])
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        self.generic_visit(node)
        kind = node.type if node.type is not None else ast.Name("Exception", ast.Load())
        node.type = ast.fix_missing_locations(ast.copy_location(_call("_exc_", kind), node))
        node.body = self._tick_body(node.body, node)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        if guard is None:
            return node
        return ast.fix_missing_locations(
            ast.copy_location(_call(guard, node.left, node.right), node)
        )


def compile_script(source: str, max_bytes: int) -> CodeType:
    """Compile an agent script for the sandbox or raise :class:`CompileFailure`.

    Raises ``ValueError`` (a resource limit, mapped by the runner) when the script is
    larger than ``max_bytes``.
    """
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ValueError(f"script is {size} bytes (limit {max_bytes})")
    try:
        tree = ast.parse(source, AGENT_FILENAME, "exec")
    except SyntaxError as exc:
        raise CompileFailure("syntax_error", str(exc.msg), exc.lineno) from None
    except ValueError as exc:  # e.g. NUL bytes in the source
        raise CompileFailure("syntax_error", str(exc), None) from None
    tree = _AugmentedTargets().visit(tree)
    policy = _Policy([], [], {})
    tree = policy.visit(tree)
    if policy.located:
        line, message = policy.located[0]
        raise CompileFailure("sandbox_violation", message, line)
    tree = ast.fix_missing_locations(_Guards().visit(tree))
    return compile(tree, AGENT_FILENAME, "exec", dont_inherit=True)
