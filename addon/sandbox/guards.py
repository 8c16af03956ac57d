"""The runtime half of the policy: the guard functions and builtins a script runs with.

The policy (:mod:`.rewrite`) turns ``a.b`` into ``_getattr_(a, "b")``, ``a.b = c`` into
``_write_(a).b = c``, ``a[k]`` into ``_getitem_(a, k)``, loops into ``_getiter_``, sequence
targets into ``_unpack_sequence_``, and adds ``_tick_``, ``_exc_``, the size-checked
operators and the import calls (``_import_``, ``_import_from_``). This module supplies
them all, plus the allowlisted builtins. Every way to reach an attribute by name ends in
:meth:`Guards.getattr`: ``a.b``, ``getattr``/``hasattr``, each component of an import, and
each ``{0.b}`` field of ``str.format`` (for ``str``, its instances and its subclasses
alike).
"""

from __future__ import annotations

import _string
import builtins
import math
import string
import types
from collections.abc import Callable, Iterator
from typing import Any

import bpy
import mathutils

from .base import Namespace, Proxy
from .errors import ResourceLimit
from .names import refused_name
from .session import ScriptSession

ALLOWED_MODULES: tuple[str, ...] = ("bpy", "math", "random", "mathutils")
_MATHUTILS_TYPES = (
    mathutils.Vector, mathutils.Euler, mathutils.Matrix, mathutils.Color, mathutils.Quaternion,
)  # fmt: skip
# ``owner`` leads from a wrapped Vector back to the raw bpy struct; the constructors and
# resize take a length and would allocate it in C before any check.
_MATHUTILS_BLOCKED = frozenset(
    {"owner", "Fill", "Range", "Linspace", "Repeat", "resize", "resized"}
)
# math functions whose cost grows without bound in C on integer arguments.
_MATH_BLOCKED = frozenset({"factorial", "comb", "perm", "prod", "lcm"})
_RANDOM_MEMBERS = (
    "random", "uniform", "randint", "randrange", "choice", "shuffle", "sample", "gauss",
    "normalvariate", "triangular", "expovariate", "betavariate", "seed",
)  # fmt: skip
# Never handed out; refused anyway should a proxy leak one (defence in depth).
_NEVER = (
    types.ModuleType, types.FrameType, types.CodeType, types.TracebackType,
    bpy.types.bpy_struct, bpy.types.bpy_prop_collection, bpy.types.bpy_prop_array,
    type(bpy.data.objects.new),  # bpy_func: a bound method of raw Blender data
)  # fmt: skip

_BUILTIN_NAMES = (
    "None", "False", "True", "abs", "all", "any", "bool", "callable", "chr", "complex",
    "dict", "divmod", "enumerate", "filter", "float", "frozenset", "hash", "int",
    "isinstance", "issubclass", "len", "list", "map", "max", "min", "next", "ord", "repr",
    "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip",
    "__build_class__",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "IndexError",
    "KeyError", "LookupError", "NameError", "NotImplementedError", "OverflowError",
    "RuntimeError", "StopIteration", "TypeError", "ValueError", "ZeroDivisionError",
)  # fmt: skip


class Guards:
    """The guard functions for one session (bound methods go into the script globals)."""

    def __init__(self, session: ScriptSession, modules: dict[str, Any]) -> None:
        self.s = session
        self.modules = modules
        self.classes: set[type] = set()  # classes the script defined (it may mutate these)

    # -- attribute access ---------------------------------------------------------------
    def _check_name(self, obj: Any, name: Any) -> str:
        if type(name) is not str:  # a str subclass could lie in startswith / __eq__
            self.s.violation(f"attribute names must be plain str, got {type(name).__name__}")
        why = refused_name(name)
        if why is not None:
            self.s.violation(why)
        if isinstance(obj, _NEVER):
            self.s.violation(f"{type(obj).__name__} objects are not accessible in the sandbox")
        if name in _MATHUTILS_BLOCKED and (
            isinstance(obj, _MATHUTILS_TYPES)
            or (isinstance(obj, type) and issubclass(obj, _MATHUTILS_TYPES))
        ):
            self.s.violation(f"mathutils attribute {name!r} is not allowed in the sandbox")
        return name

    def getattr(self, obj: Any, name: Any, *default: Any) -> Any:
        name = self._check_name(obj, name)
        try:
            if isinstance(obj, Proxy):
                return obj.sbx_get(name)
            if name in ("format", "format_map") and _is_str_like(obj):
                return self._format_method(obj, name)
            value = getattr(obj, name)
            sized = self.s.budget.sized_method(obj, name, value)
            return value if sized is None else sized
        except AttributeError:
            if default:
                return default[0]
            raise

    def hasattr(self, obj: Any, name: Any) -> bool:
        try:
            self.getattr(obj, name)
        except AttributeError:
            return False
        return True

    def write(self, obj: Any) -> Any:
        """``_write_``: only containers, the script's own class instances and proxies."""
        if isinstance(obj, (Proxy, list, dict, set, *_MATHUTILS_TYPES)):
            return obj
        if type(obj) in self.classes or obj in self.classes:
            return obj
        self.s.violation(f"cannot modify {type(obj).__name__} objects in the sandbox")
        return None

    def setattr(self, obj: Any, name: Any, value: Any) -> None:
        target = self.write(obj)
        setattr(target, self._check_name(obj, name), value)

    def getitem(self, obj: Any, key: Any) -> Any:
        return obj[key]

    def getiter(self, obj: Any) -> Any:
        return self.s.budget.ticking(obj)

    def unpack_sequence(self, value: Any, spec: tuple) -> list[Any]:
        """``a, (b, c) = value``: the items through :meth:`getiter`, nested ones too.
        ``spec`` is (minimum length, ((index, spec) of each nested target, ...))."""
        min_len, children = spec
        items = list(self.getiter(value))
        if len(items) >= min_len:  # else Python's unpacking raises its ValueError
            for index, child in children:
                items[index] = self.unpack_sequence(items[index], child)
        return items

    def iter_unpack_sequence(self, iterable: Any, spec: tuple) -> Iterator[list[Any]]:
        """``for a, b in iterable``: each item unpacked by :meth:`unpack_sequence`."""
        for item in self.getiter(iterable):
            yield self.unpack_sequence(item, spec)

    def exc(self, kind: Any) -> Any:
        """``except kind``: only ``Exception`` subclasses, so sandbox aborts pass through."""
        kinds = kind if isinstance(kind, tuple) else (kind,)
        for k in kinds:
            if not (isinstance(k, type) and issubclass(k, Exception)):
                self.s.violation(f"except clauses may only name Exception subclasses, got {k!r}")
        return kind

    def metaclass(self, name: str, bases: tuple, namespace: dict) -> type:
        cls = type(name, bases, namespace)
        self.classes.add(cls)
        return cls

    # -- str.format with guarded field access ---------------------------------------------
    def _format_method(self, obj: Any, name: str) -> Callable[..., str]:
        fmt = _SafeFormatter(self)
        if isinstance(obj, type):  # str or a subclass: the template is the first argument
            if name == "format":
                return lambda template, *a, **kw: fmt.vformat(template, a, kw)
            return lambda template, mapping: fmt.vformat(template, (), mapping)
        if name == "format":
            return lambda *a, **kw: fmt.vformat(obj, a, kw)
        return lambda mapping: fmt.vformat(obj, (), mapping)

    # -- imports, print ---------------------------------------------------------------------
    def import_module(self, dotted: str, top: bool) -> Any:
        """``import dotted`` (``top``: the first component is bound, as without ``as``).

        Every component after the first is reached with :meth:`getattr`, exactly like
        ``a.b.c``, even when only the top module is bound."""
        head, *rest = dotted.split(".")
        if head not in self.modules:
            why = " (bmesh builds geometry outside the vertex budget)" if head == "bmesh" else ""
            self.s.violation(
                f"import of module {dotted!r} is not allowed{why}; "
                f"allowed: {', '.join(ALLOWED_MODULES)}"
            )
        module = obj = self.modules[head]
        for i, part in enumerate(rest):
            obj = self._import_attr(obj, part, ".".join([head, *rest[: i + 1]]))
        return module if top else obj

    def import_from(self, dotted: str, name: str) -> Any:
        """``from dotted import name``: the module, then ``name`` through :meth:`getattr`."""
        return self._import_attr(self.import_module(dotted, top=False), name, f"{dotted}.{name}")

    def _import_attr(self, obj: Any, name: str, dotted: str) -> Any:
        try:
            return self.getattr(obj, name)
        except AttributeError:
            raise ImportError(f"cannot import {dotted!r}") from None

    def dunder_import(
        self, name: Any, globals: Any = None, locals: Any = None, fromlist: Any = (), level: Any = 0
    ) -> Any:
        """``__import__`` for C code that imports through the caller's builtins (agent code
        itself has no import opcodes left): the same checks as an import statement."""
        if level != 0 or type(name) is not str:
            self.s.violation(f"import of {name!r} is not allowed")
        return self.import_module(name, top=not fromlist)

    def printer(self, _getattr: Any = None) -> _Printer:
        return _Printer(self.s)

    # -- the globals -------------------------------------------------------------------------
    def globals(self, extra: dict[str, Any]) -> dict[str, Any]:
        b = self.s.budget
        safe = {name: getattr(builtins, name) for name in _BUILTIN_NAMES}
        safe |= {
            "int": _sized_int(self.s),
            "str": _sized_str(self.s),
            "repr": lambda obj: b.checked_text(repr(obj), "repr()"),
            "ascii": lambda obj: b.checked_text(ascii(obj), "ascii()"),
            "format": lambda obj, spec="": b.checked_text(
                format(obj, b.format_spec(spec)), "format()"
            ),
            "__import__": self.dunder_import,
            "getattr": self.getattr,
            "hasattr": self.hasattr,
            "setattr": self.setattr,
            "range": b.range,
            "pow": b.pow,
            "sum": b.sum,
            "divmod": b.divmod,
        }
        return {
            "__builtins__": safe,
            "__name__": "agent",
            "__metaclass__": self.metaclass,
            "_getattr_": self.getattr,
            "_write_": self.write,
            "_getitem_": self.getitem,
            "_getiter_": self.getiter,
            "_iter_unpack_sequence_": self.iter_unpack_sequence,
            "_unpack_sequence_": self.unpack_sequence,
            "_apply_": lambda f, *a, **kw: f(*a, **kw),
            "_print_": self.printer,
            "_inplacevar_": b.inplace,
            "_tick_": b.tick,
            "_exc_": self.exc,
            "_pow_": b.pow,
            "_mul_": b.mul,
            "_lshift_": b.lshift,
            "_mod_": b.mod,
            "_add_": b.add,
            "_floordiv_": b.floordiv,
            "_format_": b.format_value,
            "_fstring_": b.fstring,
            "_starred_": b.starred,
            "_setslice_": b.setslice,
            "_import_": self.import_module,
            "_import_from_": self.import_from,
            **extra,
        }


class _Printer:
    """The print target (``_print``): writes to the session's capped output."""

    def __init__(self, session: ScriptSession) -> None:
        self.s = session

    def _call_print(self, *objects: Any, sep: Any = " ", end: Any = "\n", **_: Any) -> None:
        sep = " " if sep is None else sep
        end = "\n" if end is None else end
        if type(sep) is not str or type(end) is not str:
            raise TypeError("print: sep and end must be str")
        self.s.output.write(sep.join(str(o) for o in objects) + end)

    def __call__(self) -> str:  # the ``printed`` name
        return self.s.output.text()


def _is_str_like(obj: Any) -> bool:
    """``str``, a subclass of it, or an instance of either: their ``format`` is guarded."""
    return isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))


class _SafeFormatter(string.Formatter):
    """``str.format`` whose ``{0.attr}`` / ``{0[key]}`` fields go through the guards and
    whose result may not outgrow the sequence budget."""

    def __init__(self, guards: Guards) -> None:
        self.g = guards
        self.size = 0

    def vformat(self, format_string: Any, args: Any, kwargs: Any) -> str:
        if type(format_string) is not str:  # a subclass could override what parse sees
            format_string = str.__str__(format_string)
        self.size = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            obj = self.g.getattr(obj, key) if is_attr else obj[key]
        return obj, first

    def format_field(self, value: Any, format_spec: str) -> Any:
        budget = self.g.s.budget
        text = super().format_field(value, budget.format_spec(format_spec))
        self.size += len(text)
        budget.check_length(self.size, "str.format result")
        return text


class _SameTypeAs(type):
    """Metaclass of a checked stand-in: ``isinstance(v, Vector)`` keeps its meaning for
    every real vector (the stand-in only guards the constructor)."""

    real: type

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, cls.real)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, cls.real)


def _sized_int(session: ScriptSession) -> type:
    """``int`` whose constructor refuses strings that parse to more bits than the budget
    (``int('1' * 10**6, 2)``: bases that are powers of two have no digit limit in CPython,
    base 10 has its own of 4300 digits)."""
    budget = session.budget

    class int(builtins.int, metaclass=_SameTypeAs):
        real = builtins.int  # type: ignore[assignment]  # the type, read by _SameTypeAs

        def __new__(cls, x: Any = 0, *base: Any, **kwargs: Any) -> Any:
            if isinstance(x, str | bytes):
                radix = base[0] if base else kwargs.get("base", 10)
                per_digit = (
                    math.log2(radix) if isinstance(radix, builtins.int) and radix >= 2 else 5.2
                )
                budget.check_int_bits(int(len(x) * per_digit), "int() of a string")
            if cls is not int:  # a script's subclass: make an instance of it
                return builtins.int.__new__(cls, x, *base, **kwargs)
            return builtins.int(x, *base, **kwargs)

    return int


def _sized_str(session: ScriptSession) -> type:
    """``str`` whose constructor checks the length of what it made (``str(big_list)``):
    one doubling step past the budget is the most a chain of them gets."""
    budget = session.budget

    class str(builtins.str, metaclass=_SameTypeAs):
        real = builtins.str

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            if cls is not str:  # a script's subclass: make an instance of it
                text = builtins.str.__new__(cls, *args, **kwargs)
            else:
                text = builtins.str(*args, **kwargs)  # type: ignore[assignment]
            return budget.checked_text(text, "str()")

    return str


def _sized_vector(session: ScriptSession) -> type:
    """``mathutils.Vector`` whose constructor refuses sequences beyond the budget:
    ``Vector([0.0] * 10**6)`` allocates in C before anything could interrupt it."""
    limit = session.limits.max_vector_length

    class Vector(mathutils.Vector, metaclass=_SameTypeAs):  # type: ignore[misc]
        real = mathutils.Vector

        def __new__(cls, seq: Any = (0.0, 0.0, 0.0)) -> Any:
            if hasattr(seq, "__len__") and len(seq) > limit:
                raise session.budget.abort(
                    ResourceLimit(f"Vector of {len(seq)} values (limit {limit})")
                )
            if not hasattr(seq, "__len__"):
                seq = list(session.budget.ticking(seq))
                if len(seq) > limit:
                    raise session.budget.abort(
                        ResourceLimit(f"Vector of {len(seq)} values (limit {limit})")
                    )
            return mathutils.Vector(seq)

    return Vector


def std_modules(session: ScriptSession) -> dict[str, Any]:
    """The ``math``, ``random`` (seeded per request) and ``mathutils`` namespaces."""
    math_members = {
        n: getattr(math, n) for n in dir(math) if not n.startswith("_") and n not in _MATH_BLOCKED
    }
    rng = session.rng
    random_members = {n: getattr(rng, n) for n in _RANDOM_MEMBERS}
    mathutils_members: dict[builtins.str, type] = {t.__name__: t for t in _MATHUTILS_TYPES}
    mathutils_members["Vector"] = _sized_vector(session)
    return {
        "math": Namespace(session, "math", math_members, math),
        "random": Namespace(session, "random", random_members, rng),
        "mathutils": Namespace(session, "mathutils", mathutils_members, mathutils),
    }
