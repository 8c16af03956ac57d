"""The compile-time policy: one pass over an agent script's AST that checks and rewrites.

Checks (a violation names the line): only the node types of :data:`.rewrite_exprs.ALLOWED` (what
RestrictedPython allows: no async, no ``except*``, no ``match``, no annotated assignment,
no ``nonlocal``); no name, argument, import component or attribute that
:func:`policy.refused_name` refuses (``_`` names, frame and code attributes; a name or
argument may be ``_`` itself and a class's method may be one of
:data:`policy.SPECIAL_METHODS`); no ``exec``/``eval`` calls, reserved names (``print`` as
a target, ``builtins``, ``breakpoint``), ``*`` or relative imports, class keywords, or
unpacking in comprehensions.

Rewrites, so that every operation a script could abuse goes through a guard that
:mod:`.guards` and :mod:`.limits` supply at run time:

- ``a.b`` -> ``_getattr_(a, "b")``; ``a.b = c`` / ``del a.b`` -> ``_write_(a).b``;
  ``a[k]`` -> ``_getitem_(a, k)``; ``a[k] = c`` -> ``_write_(a)[k] = c``;
- ``a[i:j] = c`` -> ``_setslice_(_write_(a), i, j, None, c)`` (``l[len(l):] = l``
  doubles);
- ``x op= c`` -> ``x = _inplacevar_("op=", x, c)``; ``a.b op= c`` / ``a[k] op= c`` ->
  temporaries (``a`` and ``k`` evaluated once) and a plain assignment of ``a.b op c``;
- ``for`` loops and comprehensions iterate ``_getiter_(it)``; tuple and list targets (of
  ``for``, assignments, ``with``) unpack through ``_iter_unpack_sequence_`` /
  ``_unpack_sequence_``, which iterate through it too;
- ``f(*a, **k)`` -> ``_apply_(f, *a, **k)``;
- ``import a.b`` -> ``a = _import_("a.b", True)``; ``import a.b as c`` -> ``c =
  _import_("a.b", False)``; ``from a.b import c as d`` -> ``d = _import_from_("a.b",
  "c")``: no ``IMPORT_NAME``/``IMPORT_FROM`` opcode is left (CPython's ``IMPORT_FROM`` is
  a plain getattr), each component passes the guarded getattr;
- f-strings -> ``_fstring_((parts,))`` with each field ``_format_(value, conversion,
  spec)``; a starred part of a list, tuple or set display -> ``*_starred_(part)``;
- ``**``, ``*``, ``<<``, ``%``, ``+``, ``//`` -> ``_pow_``, ``_mul_``, ``_lshift_``,
  ``_mod_``, ``_add_``, ``_floordiv_`` (size-checked);
- ``_tick_()`` first in every loop body, function, lambda, ``except`` handler and
  ``finally``; every handler's type goes through ``_exc_`` (a bare ``except:`` is
  ``except Exception``), so the sandbox's aborts, not ``Exception`` subclasses, pass;
- classes are made by ``__metaclass__`` (the script's own classes, which it may modify);
- ``print(...)`` -> ``_print._call_print(...)`` and ``printed`` -> ``_print()``, with
  ``_print = _print_(_getattr_)`` first in each function (or module) that prints.

New nodes take the location of the node they replace; temporaries are named ``aug·N``,
which is no identifier, so no script name can clash with one.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from types import CodeType
from typing import Any, ClassVar

from .names import refused_name
from .rewrite_exprs import Expressions, Loc, call, const, loc_of, name, tick, unpack_spec

_INPLACE = {
    ast.Add: "+=", ast.Sub: "-=", ast.Mult: "*=", ast.Div: "/=", ast.Mod: "%=",
    ast.Pow: "**=", ast.LShift: "<<=", ast.RShift: ">>=", ast.BitOr: "|=",
    ast.BitXor: "^=", ast.BitAnd: "&=", ast.FloorDiv: "//=", ast.MatMult: "@=",
}  # fmt: skip
_STORE = ast.Store()
AGENT_FILENAME = "<agent>"  # what agent code names as its file (tracebacks find its lines)


class Violations(Exception):
    """The script breaks the policy: ``found`` holds (line, message) pairs, by line."""

    def __init__(self, found: list[tuple[int | None, str]]) -> None:
        super().__init__(found[0][1])
        self.found = found


def _assign(target: ast.expr, value: ast.expr, loc: Loc) -> ast.Assign:
    return ast.Assign([target], value, **loc)


def _print_collector(loc: Loc) -> ast.Assign:
    """``_print = _print_(_getattr_)``: the capped print target of a function or module."""
    return _assign(name("_print", loc, _STORE), call("_print_", [name("_getattr_", loc)], loc), loc)


class Rewriter(Expressions):
    """One pass: :meth:`module` checks and rewrites a parsed module in place and raises
    :class:`Violations` if the policy refuses anything in it."""

    def module(self, tree: ast.Module) -> ast.Module:
        tree.body = self.body(tree.body)
        if self.prints:
            start = {"lineno": 1, "col_offset": 0, "end_lineno": 1, "end_col_offset": 0}
            tree.body.insert(0, _print_collector(start))
        if self.found:
            raise Violations(sorted(self.found, key=lambda f: f[0] or 0))
        return tree

    # -- statements ----------------------------------------------------------------------
    def body(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for node in stmts:
            visit = self._STMTS.get(type(node))
            if visit is None:  # not allowed: Match, AnnAssign, Nonlocal, async ...
                self.check_type(node)
                out.append(node)
                continue
            result = visit(self, node)
            if isinstance(result, list):
                out.extend(result)
            else:
                out.append(result)
        return out

    def s_expr(self, node: ast.Expr) -> ast.stmt:
        node.value = self.expr(node.value)
        return node

    def s_assign(self, node: ast.Assign) -> ast.stmt | list[ast.stmt]:
        value = self.expr(node.value)
        loc = loc_of(node)
        if len(node.targets) == 1:
            return self.assign_to(node.targets[0], value, loc)
        # a = b = value: evaluated once, then assigned to each target, left to right
        temp = self.temp(loc)
        out: list[ast.stmt] = [_assign(temp, value, loc)]
        out += [self.assign_to(t, name(temp.id, loc), loc) for t in node.targets]
        return out

    def assign_to(self, target: ast.expr, value: ast.expr, loc: Loc) -> ast.stmt:
        """``target = value`` (``value`` done): slices and sequences through guards."""
        if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Slice):
            cut = target.slice
            bounds = [
                const(None, loc) if b is None else self.expr(b)
                for b in (cut.lower, cut.upper, cut.step)
            ]
            container = call("_write_", [self.expr(target.value)], loc)
            return ast.Expr(call("_setslice_", [container, *bounds, value], loc), **loc)
        if isinstance(target, ast.Tuple | ast.List):
            spec = const(unpack_spec(target), loc)
            value = call("_unpack_sequence_", [value, spec], loc)
        return _assign(self.target(target), value, loc)

    def s_augassign(self, node: ast.AugAssign) -> ast.stmt | list[ast.stmt]:
        """``x op= c`` -> ``_inplacevar_``; on an attribute or a subscript, the container
        (and key, or slice bounds) once into temporaries, then a plain assignment."""
        loc, target, op = loc_of(node), node.target, node.op
        value = self.expr(node.value)
        if isinstance(target, ast.Name):
            self.check_name(target, target.id)
            args = [const(_INPLACE[type(op)], loc), name(target.id, loc), value]
            return _assign(name(target.id, loc, _STORE), call("_inplacevar_", args, loc), loc)
        if not isinstance(target, ast.Attribute | ast.Subscript):
            self.error(node, f"cannot assign to {type(target).__name__}")
            return node
        base = self.temp(loc)
        out: list[ast.stmt] = [_assign(base, self.expr(target.value), loc)]
        if isinstance(target, ast.Attribute):
            self.check_attribute(target, target.attr)
            load = call("_getattr_", [name(base.id, loc), const(target.attr, loc)], loc)
            store: ast.expr = ast.Attribute(name(base.id, loc), target.attr, _STORE, **loc)
        else:
            key: ast.expr
            if isinstance(target.slice, ast.Slice):  # each bound once; stored by _setslice_
                bounds: list[ast.expr | None] = []
                for part in (target.slice.lower, target.slice.upper, target.slice.step):
                    bounds.append(None if part is None else self.once(part, loc, out))
                key = ast.Slice(*bounds, **loc)
            else:
                key = self.once(target.slice, loc, out)
            load = call("_getitem_", [name(base.id, loc), key], loc)
            store = ast.Subscript(name(base.id, loc), key, _STORE, **loc)
        result = self.binop(ast.BinOp(load, op, value, **loc))
        out.append(self.assign_to_done(store, result, loc))
        return out

    def once(self, value: ast.expr, loc: Loc, out: list[ast.stmt]) -> ast.Name:
        """``value`` into a new temporary (its assignment appended to ``out``)."""
        temp = self.temp(loc)
        out.append(_assign(temp, self.expr(value), loc))
        return name(temp.id, loc)

    def assign_to_done(self, store: ast.expr, value: ast.expr, loc: Loc) -> ast.stmt:
        """:meth:`assign_to` for a target built here from temporaries (already checked)."""
        if isinstance(store, ast.Subscript) and isinstance(store.slice, ast.Slice):
            cut = store.slice
            bounds = [
                const(None, loc) if b is None else b for b in (cut.lower, cut.upper, cut.step)
            ]
            container = call("_write_", [store.value], loc)
            return ast.Expr(call("_setslice_", [container, *bounds, value], loc), **loc)
        store.value = call("_write_", [store.value], loc)  # type: ignore[attr-defined]
        return _assign(store, value, loc)

    def s_for(self, node: ast.For) -> ast.stmt:
        node.iter = self.guarded_iter(node.target, self.expr(node.iter), loc_of(node.iter))
        node.target = self.target(node.target)
        node.body = [tick(loc_of(node)), *self.body(node.body)]
        node.orelse = self.body(node.orelse)
        return node

    def s_while(self, node: ast.While) -> ast.stmt:
        node.test = self.expr(node.test)
        node.body = [tick(loc_of(node)), *self.body(node.body)]
        node.orelse = self.body(node.orelse)
        return node

    def s_if(self, node: ast.If) -> ast.stmt:
        node.test = self.expr(node.test)
        node.body, node.orelse = self.body(node.body), self.body(node.orelse)
        return node

    def s_return(self, node: ast.Return) -> ast.stmt:
        if node.value is not None:
            node.value = self.expr(node.value)
        return node

    def s_raise(self, node: ast.Raise) -> ast.stmt:
        if node.exc is not None:
            node.exc = self.expr(node.exc)
        if node.cause is not None:
            node.cause = self.expr(node.cause)
        return node

    def s_assert(self, node: ast.Assert) -> ast.stmt:
        node.test = self.expr(node.test)
        if node.msg is not None:
            node.msg = self.expr(node.msg)
        return node

    def s_delete(self, node: ast.Delete) -> ast.stmt:
        node.targets = [self.target(t) for t in node.targets]
        return node

    def s_keep(self, node: ast.stmt) -> ast.stmt:  # pass, break, continue
        return node

    def s_global(self, node: ast.Global) -> ast.stmt:
        for ident in node.names:
            self.check_name(node, ident)
        return node

    def s_try(self, node: ast.Try) -> ast.stmt:
        node.body = self.body(node.body)
        for handler in node.handlers:
            loc = loc_of(handler)
            self.check_name(handler, handler.name)
            kind = name("Exception", loc) if handler.type is None else self.expr(handler.type)
            handler.type = call("_exc_", [kind], loc)
            handler.body = [tick(loc), *self.body(handler.body)]
        node.orelse = self.body(node.orelse)
        if node.finalbody:
            node.finalbody = [tick(loc_of(node.finalbody[0])), *self.body(node.finalbody)]
        return node

    def s_with(self, node: ast.With) -> ast.stmt:
        unpacks: list[ast.stmt] = []
        for item in node.items:
            item.context_expr = self.expr(item.context_expr)
            target = item.optional_vars
            if isinstance(target, ast.Tuple | ast.List):  # as (a, b): unpacked by the guard
                loc = loc_of(target)
                temp = self.temp(loc)
                item.optional_vars = temp
                unpacks.append(self.assign_to(target, name(temp.id, loc), loc))
            elif target is not None:
                item.optional_vars = self.target(target)
        node.body = unpacks + self.body(node.body)
        return node

    def s_function(self, node: ast.FunctionDef) -> ast.stmt:
        self.check_name(node, node.name, method=True)
        node.decorator_list = [self.expr(d) for d in node.decorator_list]
        self.arguments(node, node.args)
        if node.returns is not None:
            node.returns = self.expr(node.returns)
        outer, self.prints = self.prints, False
        loc = loc_of(node)
        body = self.body(node.body)
        if self.prints:
            body.insert(0, _print_collector(loc))
        node.body = [tick(loc), *body]
        self.prints = outer
        return node

    def s_class(self, node: ast.ClassDef) -> ast.stmt:
        """A class made by ``__metaclass__``, so the script may modify its own classes."""
        self.check_name(node, node.name)
        if node.keywords:
            self.error(node, "class keyword arguments (metaclass=...) are not allowed")
        loc = loc_of(node)
        node.bases = [self.expr(b) for b in node.bases]
        node.decorator_list = [self.expr(d) for d in node.decorator_list]
        node.keywords = [ast.keyword("metaclass", name("__metaclass__", loc), **loc)]
        node.body = self.body(node.body)
        return node

    def s_import(self, node: ast.Import | ast.ImportFrom) -> list[ast.stmt]:
        """Each imported name -> an assignment from ``_import_`` / ``_import_from_``."""
        loc = loc_of(node)
        module = ""
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                self.error(node, "relative imports are not allowed in the sandbox")
        out: list[ast.stmt] = []
        for alias in node.names:
            if alias.name == "*":
                self.error(node, '"*" imports are not allowed')
                continue
            for part in [*module.split("."), *alias.name.split(".")]:
                why = refused_name(part) if part else None
                if why is not None:
                    self.error(node, why)
            if isinstance(node, ast.ImportFrom):
                bound = alias.asname or alias.name
                args: list[ast.expr] = [const(module, loc), const(alias.name, loc)]
                value = call("_import_from_", args, loc)
            else:
                bound = alias.asname or alias.name.partition(".")[0]
                args = [const(alias.name, loc), const(alias.asname is None, loc)]
                value = call("_import_", args, loc)
            self.check_name(node, bound)
            out.append(_assign(name(bound, loc, _STORE), value, loc))
        return out

    _STMTS: ClassVar[dict[type, Callable[[Any, Any], ast.stmt | list[ast.stmt]]]] = {
        ast.Expr: s_expr, ast.Assign: s_assign, ast.AugAssign: s_augassign, ast.For: s_for,
        ast.While: s_while, ast.If: s_if, ast.Return: s_return, ast.Raise: s_raise,
        ast.Assert: s_assert, ast.Delete: s_delete, ast.Pass: s_keep, ast.Break: s_keep,
        ast.Continue: s_keep, ast.Global: s_global, ast.Try: s_try, ast.With: s_with,
        ast.FunctionDef: s_function, ast.ClassDef: s_class, ast.Import: s_import,
        ast.ImportFrom: s_import,
    }  # fmt: skip


def compile_module(source: str) -> tuple[CodeType, ast.Module, bool]:
    """``source`` parsed, passed through one :class:`Rewriter` and compiled: its code, the
    rewritten tree, and whether it prints. Raises ``SyntaxError``, ``ValueError`` (NUL
    bytes) or :class:`Violations`; ``RecursionError``/``MemoryError`` for deep nesting."""
    rewriter = Rewriter()
    tree = rewriter.module(ast.parse(source, AGENT_FILENAME, "exec"))
    return compile(tree, AGENT_FILENAME, "exec", dont_inherit=True), tree, rewriter.prints
