"""The expression half of the compile-time pass (:mod:`.rewrite` has the statements and
the whole list of checks and rewrites): names, attributes, subscripts, calls, displays,
f-strings, operators, lambdas, comprehensions, and assignment targets."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any, ClassVar

from .names import SPECIAL_METHODS, refused_name

ALLOWED: frozenset[type] = frozenset(
    {
        ast.Module, ast.FunctionDef, ast.ClassDef, ast.Return, ast.Delete, ast.Assign,
        ast.AugAssign, ast.For, ast.While, ast.If, ast.With, ast.Raise, ast.Try, ast.Assert,
        ast.Import, ast.ImportFrom, ast.Global, ast.Expr, ast.Pass, ast.Break, ast.Continue,
        ast.BoolOp, ast.NamedExpr, ast.BinOp, ast.UnaryOp, ast.Lambda, ast.IfExp, ast.Dict,
        ast.Set, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Yield,
        ast.YieldFrom, ast.Compare, ast.Call, ast.FormattedValue, ast.JoinedStr,
        ast.Constant, ast.Attribute, ast.Subscript, ast.Starred, ast.Name, ast.List,
        ast.Tuple, ast.Slice, ast.comprehension, ast.ExceptHandler, ast.arguments, ast.arg,
        ast.keyword, ast.alias, ast.withitem,
    }
)  # fmt: skip
_GUARDED_OPS: dict[type[ast.operator], str] = {
    ast.Pow: "_pow_",
    ast.Mult: "_mul_",
    ast.LShift: "_lshift_",
    ast.Mod: "_mod_",  # %-formatting widths
    ast.Add: "_add_",  # s + s doubling
    ast.FloorDiv: "_floordiv_",  # quadratic on huge integers
}
_RESERVED = frozenset({"print", "printed", "builtins", "breakpoint"})
_LOAD, _STORE = ast.Load(), ast.Store()
Loc = dict[str, Any]


def loc_of(node: ast.AST) -> Loc:
    return {
        "lineno": node.lineno,  # type: ignore[attr-defined]
        "col_offset": node.col_offset,  # type: ignore[attr-defined]
        "end_lineno": node.end_lineno,  # type: ignore[attr-defined]
        "end_col_offset": node.end_col_offset,  # type: ignore[attr-defined]
    }


def name(ident: str, loc: Loc, ctx: ast.expr_context = _LOAD) -> ast.Name:
    return ast.Name(ident, ctx, **loc)


def call(func: str, args: list[ast.expr], loc: Loc) -> ast.Call:
    return ast.Call(name(func, loc), args, [], **loc)


def const(value: Any, loc: Loc) -> ast.Constant:
    return ast.Constant(value, **loc)


def tick(loc: Loc) -> ast.Expr:
    return ast.Expr(call("_tick_", [], loc), **loc)


def unpack_spec(target: ast.Tuple | ast.List) -> tuple:
    """(minimum length, ((index, spec) of each nested sequence target, ...)): what
    ``_unpack_sequence_`` needs to unpack nested targets through ``_getiter_`` too."""
    elts = target.elts
    min_len = sum(1 for e in elts if not isinstance(e, ast.Starred))
    children, offset = [], 0
    for i, elt in enumerate(elts):
        if isinstance(elt, ast.Starred):
            offset = min_len + 1  # after a starred target, index from the end
        elif isinstance(elt, ast.Tuple | ast.List):
            children.append((i - offset, unpack_spec(elt)))
    return (min_len, tuple(children))


class Expressions:
    """The checks and the expression rewrites; state shared with the statement half."""

    def __init__(self) -> None:
        self.found: list[tuple[int | None, str]] = []
        self.temps = 0
        self.prints = False  # the current function (or the module) uses print/printed

    # -- checks ----------------------------------------------------------------------------
    def error(self, node: ast.AST, message: str) -> None:
        self.found.append((getattr(node, "lineno", None), message))

    def check_type(self, node: ast.AST) -> None:
        if type(node) not in ALLOWED:
            self.error(node, f"{type(node).__name__} statements are not allowed")

    def check_name(self, node: ast.AST, ident: str | None, method: bool = False) -> None:
        """A variable, argument or definition name (``_`` itself is a name)."""
        if ident is None or ident == "_":
            return
        if method and ident in SPECIAL_METHODS and getattr(node, "col_offset", 0) > 0:
            return  # a method of a class (not at column 0)
        if ident.startswith("_"):
            self.error(node, f'"{ident}" is an invalid variable name because it starts with "_"')
        elif ident.endswith("__roles__"):
            self.error(node, f'"{ident}" is an invalid variable name')
        elif ident in _RESERVED:
            self.error(node, f'"{ident}" is a reserved name')

    def check_attribute(self, node: ast.AST, attr: str) -> None:
        why = refused_name(attr)
        if why is not None or attr.endswith("__roles__"):
            self.error(node, why or f"attribute {attr!r} is not accessible in the sandbox")

    def temp(self, loc: Loc, ctx: ast.expr_context = _STORE) -> ast.Name:
        temp = name(f"aug·{self.temps}", loc, ctx)
        self.temps += 1
        return temp

    # -- expressions -----------------------------------------------------------------------
    def expr(self, node: ast.expr) -> ast.expr:
        visit = self._EXPRS.get(type(node))
        if visit is None:
            self.check_type(node)
            return node
        return visit(self, node)

    def e_name(self, node: ast.Name) -> ast.expr:
        if node.id == "printed":
            self.prints = True
            return ast.Call(name("_print", loc_of(node)), [], [], **loc_of(node))
        if node.id == "print":
            self.prints = True
            return ast.Attribute(name("_print", loc_of(node)), "_call_print", _LOAD, **loc_of(node))
        self.check_name(node, node.id)
        return node

    def e_attribute(self, node: ast.Attribute) -> ast.expr:
        self.check_attribute(node, node.attr)
        loc = loc_of(node)
        return call("_getattr_", [self.expr(node.value), const(node.attr, loc)], loc)

    def e_subscript(self, node: ast.Subscript) -> ast.expr:
        return call("_getitem_", [self.expr(node.value), self.expr(node.slice)], loc_of(node))

    def e_call(self, node: ast.Call) -> ast.expr:
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("exec", "eval"):
            self.error(node, f"{func.id} calls are not allowed")
        node.func = self.expr(func)
        node.args = [self.expr(a) for a in node.args]
        spread = any(isinstance(a, ast.Starred) for a in node.args)
        for keyword in node.keywords:
            keyword.value = self.expr(keyword.value)
            spread |= keyword.arg is None
        if spread:  # f(*a, **k): through _apply_
            node.args.insert(0, node.func)
            node.func = name("_apply_", loc_of(node))
        return node

    def e_starred(self, node: ast.Starred) -> ast.expr:  # *a in a call
        node.value = self.expr(node.value)
        return node

    def e_display(self, node: ast.List | ast.Tuple | ast.Set) -> ast.expr:
        """A starred part is size-checked: ``[*l, *l]`` doubles."""
        elts: list[ast.expr] = []
        for elt in node.elts:
            if isinstance(elt, ast.Starred):
                elt.value = call("_starred_", [self.expr(elt.value)], loc_of(elt))
                elts.append(elt)
            else:
                elts.append(self.expr(elt))
        node.elts = elts
        return node

    def e_dict(self, node: ast.Dict) -> ast.expr:
        node.keys = [None if k is None else self.expr(k) for k in node.keys]
        node.values = [self.expr(v) for v in node.values]
        return node

    def e_binop(self, node: ast.BinOp) -> ast.expr:
        node.left, node.right = self.expr(node.left), self.expr(node.right)
        return self.binop(node)

    def binop(self, node: ast.BinOp) -> ast.expr:
        """``node`` (children done) through its size-checked helper, if it has one."""
        guard = _GUARDED_OPS.get(type(node.op))
        return node if guard is None else call(guard, [node.left, node.right], loc_of(node))

    def e_unary(self, node: ast.UnaryOp) -> ast.expr:
        node.operand = self.expr(node.operand)
        return node

    def e_boolop(self, node: ast.BoolOp) -> ast.expr:
        node.values = [self.expr(v) for v in node.values]
        return node

    def e_compare(self, node: ast.Compare) -> ast.expr:
        node.left = self.expr(node.left)
        node.comparators = [self.expr(c) for c in node.comparators]
        return node

    def e_ifexp(self, node: ast.IfExp) -> ast.expr:
        node.test, node.body = self.expr(node.test), self.expr(node.body)
        node.orelse = self.expr(node.orelse)
        return node

    def e_lambda(self, node: ast.Lambda) -> ast.expr:
        """``lambda: _tick_() or body`` (``_tick_`` returns None)."""
        self.arguments(node, node.args)
        loc = loc_of(node)
        node.body = ast.BoolOp(ast.Or(), [call("_tick_", [], loc), self.expr(node.body)], **loc)
        return node

    def arguments(self, owner: ast.AST, args: ast.arguments) -> None:
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        every += [a for a in (args.vararg, args.kwarg) if a is not None]
        for arg in every:
            self.check_name(owner, arg.arg)
            if arg.annotation is not None:  # evaluated when the function is defined
                arg.annotation = self.expr(arg.annotation)
        args.defaults = [self.expr(d) for d in args.defaults]
        args.kw_defaults = [None if d is None else self.expr(d) for d in args.kw_defaults]

    def e_namedexpr(self, node: ast.NamedExpr) -> ast.expr:
        node.value = self.expr(node.value)
        node.target = self.target(node.target)  # type: ignore[assignment]  # a Name
        return node

    def e_comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> ast.expr:
        if isinstance(node.elt, ast.Starred):
            self.error(node, "unpacking in comprehensions is not allowed")
        node.generators = [self.generator(g) for g in node.generators]
        node.elt = self.expr(node.elt)
        return node

    def e_dictcomp(self, node: ast.DictComp) -> ast.expr:
        node.generators = [self.generator(g) for g in node.generators]
        node.key, node.value = self.expr(node.key), self.expr(node.value)
        return node

    def generator(self, node: ast.comprehension) -> ast.comprehension:
        if node.is_async:
            self.error(node.iter, "asynchronous comprehensions are not allowed")
        node.iter = self.guarded_iter(node.target, self.expr(node.iter), loc_of(node.iter))
        node.target = self.target(node.target)
        node.ifs = [self.expr(i) for i in node.ifs]
        return node

    def guarded_iter(self, target: ast.expr, it: ast.expr, loc: Loc) -> ast.expr:
        """``_getiter_(it)``, or ``_iter_unpack_sequence_`` for a sequence target."""
        if isinstance(target, ast.Tuple | ast.List):
            spec = const(unpack_spec(target), loc)
            return call("_iter_unpack_sequence_", [it, spec], loc)
        return call("_getiter_", [it], loc)

    def e_yield(self, node: ast.Yield | ast.YieldFrom) -> ast.expr:
        if node.value is not None:
            node.value = self.expr(node.value)
        return node

    def e_joinedstr(self, node: ast.JoinedStr) -> ast.expr:
        """``f"a{x!r:>{w}}"`` -> ``_fstring_(("a", _format_(x, 114, _fstring_(...))))``."""
        parts: list[ast.expr] = []
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                loc = loc_of(part)
                spec = const("", loc) if part.format_spec is None else self.expr(part.format_spec)
                value = [self.expr(part.value), const(part.conversion, loc), spec]
                parts.append(call("_format_", value, loc))
            else:
                parts.append(self.expr(part))
        loc = loc_of(node)
        return call("_fstring_", [ast.Tuple(parts, _LOAD, **loc)], loc)

    def e_slice(self, node: ast.Slice) -> ast.expr:
        for field in ("lower", "upper", "step"):
            part = getattr(node, field)
            if part is not None:
                setattr(node, field, self.expr(part))
        return node

    # -- assignment (and deletion) targets -------------------------------------------------
    def target(self, node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Name):
            self.check_name(node, node.id)
        elif isinstance(node, ast.Attribute):
            self.check_attribute(node, node.attr)
            node.value = call("_write_", [self.expr(node.value)], loc_of(node.value))
        elif isinstance(node, ast.Subscript):
            if isinstance(node.slice, ast.Slice) and isinstance(node.ctx, ast.Store):
                # only `a[i:j] = value` is size-checked (see Rewriter.assign_to)
                self.error(node, "slice assignment is only allowed as `a[i:j] = value`")
            node.value = call("_write_", [self.expr(node.value)], loc_of(node.value))
            node.slice = self.expr(node.slice)
        elif isinstance(node, ast.Tuple | ast.List):
            node.elts = [self.target(e) for e in node.elts]
        elif isinstance(node, ast.Starred):
            node.value = self.target(node.value)
        else:
            self.error(node, f"cannot assign to {type(node).__name__}")
        return node

    _EXPRS: ClassVar[dict[type, Callable[[Any, Any], ast.expr]]] = {
        ast.Name: e_name, ast.Constant: lambda self, node: node, ast.Attribute: e_attribute,
        ast.Subscript: e_subscript, ast.Call: e_call, ast.Starred: e_starred,
        ast.List: e_display, ast.Tuple: e_display, ast.Set: e_display, ast.Dict: e_dict,
        ast.BinOp: e_binop, ast.UnaryOp: e_unary, ast.BoolOp: e_boolop,
        ast.Compare: e_compare, ast.IfExp: e_ifexp, ast.Lambda: e_lambda,
        ast.NamedExpr: e_namedexpr, ast.ListComp: e_comprehension,
        ast.SetComp: e_comprehension, ast.GeneratorExp: e_comprehension,
        ast.DictComp: e_dictcomp, ast.Yield: e_yield, ast.YieldFrom: e_yield,
        ast.JoinedStr: e_joinedstr, ast.Slice: e_slice,
    }  # fmt: skip
