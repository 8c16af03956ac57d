"""Per-request budgets: the deadline, the tick counter and size-checked arithmetic.

The policy injects ``_tick_()`` into every loop body, function entry, ``except`` handler
and ``finally`` block, and the iteration guard ticks once per item, so a script cannot
run Python code for long without passing through :meth:`Budget.tick`. A pure signal
timeout would not do: its exception can be swallowed and it cannot interrupt C code.
Long-running C calls (``10**10**8``, ``"x" * 10**12``, ``sum(range(10**15))``) are refused
*before* they start by the size checks below. The OS layer (hard kill of the worker)
remains the backstop for anything this layer misses.
"""

from __future__ import annotations

import operator
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import ResourceLimit, SandboxAbort, Timeout
from .sizes import GROWTH, SEQUENCES, is_int, kind_of, kind_of_type, materialized, printf_length

_SPEC_NUMBER = re.compile(r"\d+")
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_CONVERSIONS: dict[int, Callable[[Any], str]] = {115: str, 114: repr, 97: ascii}


@dataclass(frozen=True)
class ScriptLimits:
    """Budgets for one request. Defaults suit an RL worker; tests shrink ``deadline_s``."""

    deadline_s: float = 5.0
    max_ticks: int = 20_000_000
    max_script_bytes: int = 100_000
    max_output_bytes: int = 16_384
    max_objects: int = 100
    max_vertices: int = 200_000  # evaluated vertices of all agent objects together
    # One operator call cannot be interrupted and Blender's primitives scale badly (a
    # UV sphere of 8k vertices takes ~1.5 s here), so each call is capped on its own.
    max_primitive_vertices: int = 10_000
    max_subdiv_levels: int = 4
    # Largest face (corners) or vertex valence allowed under a Subdivision modifier: see
    # objects.largest_valence (32-gon caps subdivide in ~0.08 s, 48-gon ones in 0.5 s).
    max_subsurf_valence: int = 32
    max_int_bits: int = 100_000  # largest integer a script may build (~30k digits)
    # pow(b, e, m) costs ~ bits(e) * bits(m)^2 word operations in C, uninterruptible:
    # 4096-bit operands (2^36) take ~0.1 s here, 16384-bit ones 7.5 s.
    max_modpow_cost: int = 2**36
    max_sequence: int = 1_000_000  # longest range / repeated sequence / built string
    max_format_width: int = 10_000  # widths/precisions in format specs and %-formatting
    # The worker's resident memory, checked every few thousand ticks: growth by many
    # small objects (a loop making vectors) stops cleanly here instead of at the
    # address-space limit, where Blender's allocator aborts the whole process.
    max_memory_mb: int = 2048
    max_vector_length: int = 64  # mathutils.Vector(seq): VectorN allocates len(seq)

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if not value > 0:
                raise ValueError(f"ScriptLimits.{name} must be positive, got {value!r}")


class Budget:
    """The running state of one request: deadline, ticks and the sticky abort."""

    __slots__ = ("deadline", "fatal", "limits", "ticks")

    def __init__(self, limits: ScriptLimits) -> None:
        self.limits = limits
        self.deadline = time.perf_counter() + limits.deadline_s
        self.ticks = 0
        self.fatal: SandboxAbort | None = None

    def abort(self, exc: SandboxAbort) -> SandboxAbort:
        """Record the first abort and return it for raising; later ticks re-raise it."""
        if self.fatal is None:
            self.fatal = exc
        return self.fatal

    def tick(self) -> None:
        """Called from injected code: re-raise a recorded abort, check ticks and time."""
        if self.fatal is not None:
            raise self.fatal
        self.ticks += 1
        if self.ticks > self.limits.max_ticks:
            raise self.abort(Timeout(f"script exceeded {self.limits.max_ticks} steps"))
        if time.perf_counter() > self.deadline:
            raise self.abort(Timeout(f"script exceeded its {self.limits.deadline_s:g} s deadline"))
        if not self.ticks & _MEMORY_EVERY:
            rss = resident_mb()
            if rss > self.limits.max_memory_mb:
                limit = self.limits.max_memory_mb
                raise self.abort(ResourceLimit(f"the worker uses {rss} MiB (limit {limit} MiB)"))

    def ticking(self, iterable: Any) -> Iterator[Any]:
        """``iter(iterable)`` that ticks once per item (the ``_getiter_`` guard)."""
        tick = self.tick
        for item in iterable:
            tick()
            yield item

    # -- size-checked arithmetic ------------------------------------------------------
    def _int_bits(self, bits: int, what: str) -> None:
        if bits > self.limits.max_int_bits:
            raise self.abort(
                ResourceLimit(f"{what} would need ~{bits} bits (limit {self.limits.max_int_bits})")
            )

    def _seq_len(self, length: int, what: str) -> None:
        if length > self.limits.max_sequence:
            limit = self.limits.max_sequence
            raise self.abort(ResourceLimit(f"{what} would have {length} items (limit {limit})"))

    def check_int_bits(self, bits: int, what: str) -> None:
        """Abort with ResourceLimit if an integer would exceed ``max_int_bits``."""
        self._int_bits(bits, what)

    def check_length(self, length: int, what: str) -> None:
        """Abort with ResourceLimit if a built sequence or string would exceed the budget."""
        self._seq_len(length, what)

    def pow(self, base: Any, exp: Any, mod: Any = None) -> Any:
        """``base ** exp`` refusing integer results beyond ``max_int_bits``, and
        ``pow(b, e, m)`` whose cost (C, not interruptible) is beyond ``max_modpow_cost``,
        before computing."""
        if mod is None and is_int(base) and is_int(exp):
            # int(): an int subclass may lie in its comparison methods, not in its value
            b, e = int(base), int(exp)
            if e > 0 and abs(b) > 1:
                self._int_bits(abs(b).bit_length() * e, f"{b} ** {e}")
        if mod is not None and is_int(exp) and is_int(mod):
            cost = max(abs(int(exp)).bit_length(), 1) * abs(int(mod)).bit_length() ** 2
            if cost > self.limits.max_modpow_cost:
                raise self.abort(
                    ResourceLimit(
                        f"pow() with a {abs(int(exp)).bit_length()}-bit exponent and a "
                        f"{abs(int(mod)).bit_length()}-bit modulus is too expensive"
                    )
                )
        return pow(base, exp) if mod is None else pow(base, exp, mod)

    def add(self, a: Any, b: Any) -> Any:
        """``a + b`` refusing concatenations longer than ``max_sequence``."""
        if isinstance(a, SEQUENCES) and isinstance(b, SEQUENCES):
            self._seq_len(len(a) + len(b), f"{type(a).__name__} + {type(b).__name__}")
        return a + b

    def sum(self, iterable: Any, /, start: Any = 0) -> Any:
        """``sum`` that ticks per item and refuses sequence results beyond the budget.

        Lists and tuples are concatenated in linear time: the built-in ``sum`` copies the
        growing total at every item, which is quadratic and cannot be interrupted."""
        items = list(self.ticking(iterable))
        if not isinstance(start, list | tuple):
            return sum(items, start)
        lengths = [len(i) for i in items if isinstance(i, SEQUENCES)]
        self._seq_len(len(start) + sum(lengths), "sum()")
        if len(lengths) < len(items) or not all(type(i) is type(start) for i in items):
            return sum(items, start)  # mixed types: let the built-in raise its TypeError
        out = list(start)
        for item in items:
            out.extend(item)
        return out if isinstance(start, list) else tuple(out)

    def sized_method(self, obj: Any, name: str, method: Any) -> Callable[..., Any] | None:
        """A size-checked stand-in for a built-in method whose result can be far larger
        than its inputs (``"x".ljust(10**9)``, ``(0).to_bytes(10**9)``, ``l.extend(l)``
        doubling, ``int.from_bytes`` of a long string), or None when ``method`` allocates
        no more than its inputs.

        Taken from the type (``str.ljust(s, n)``, ``map(str.ljust, ...)``), the method
        gets its instance as the first argument, and is checked the same way."""
        unbound = isinstance(obj, type)
        kind = kind_of_type(obj) if unbound else kind_of(obj)
        if (kind, name) == (int, "from_bytes"):
            return self._checked_from_bytes(method)
        bound = None if kind is None else GROWTH.get((kind, name))
        if bound is None:
            return None
        what = f"{getattr(kind, '__name__', '?')}.{name}()"

        def checked(*args: Any, **kwargs: Any) -> Any:
            if not unbound:
                args = materialized(name, args)
                self._seq_len(bound(obj, args, kwargs), what)
                return method(*args, **kwargs)
            if not args:
                return method(*args, **kwargs)  # the real method raises its TypeError
            this, rest = args[0], materialized(name, args[1:])
            self._seq_len(bound(this, rest, kwargs), what)
            return method(this, *rest, **kwargs)

        return checked

    def _checked_from_bytes(self, method: Any) -> Callable[..., Any]:
        def checked(data: Any = b"", *args: Any, **kwargs: Any) -> Any:
            if hasattr(data, "__len__"):
                self._int_bits(8 * len(data), "int.from_bytes()")
            return method(data, *args, **kwargs)

        return checked

    def floordiv(self, a: Any, b: Any) -> Any:
        """``a // b`` refusing integer divisions whose (quadratic, C) cost is too high."""
        self._division(a, b, "//")
        return a // b

    def divmod(self, a: Any, b: Any) -> Any:
        self._division(a, b, "divmod")
        return divmod(a, b)

    def _division(self, a: Any, b: Any, what: str) -> None:
        """Schoolbook division costs bits(a) * bits(b) in C: ints built from strings in a
        power-of-two base (``int('1' * 10**6, 2)``) reach millions of bits."""
        if is_int(a) and is_int(b):
            bits_a, bits_b = abs(int(a)).bit_length(), abs(int(b)).bit_length()
            if bits_a * max(bits_b, 1) > self.limits.max_modpow_cost // 64:
                raise self.abort(
                    ResourceLimit(
                        f"integer {what} of a {bits_a}-bit number by a {bits_b}-bit number "
                        "is too expensive"
                    )
                )

    def mul(self, a: Any, b: Any) -> Any:
        """``a * b`` refusing huge repeated sequences and huge integer products."""
        if is_int(a) and is_int(b):
            self._int_bits(abs(a).bit_length() + abs(b).bit_length(), "integer product")
        elif is_int(b) and hasattr(a, "__len__"):
            self._seq_len(len(a) * b, f"{type(a).__name__} * {b}")
        elif is_int(a) and hasattr(b, "__len__"):
            self._seq_len(len(b) * a, f"{a} * {type(b).__name__}")
        return a * b

    def lshift(self, a: Any, b: Any) -> Any:
        if is_int(a) and is_int(b) and int(b) > 0:
            self._int_bits(abs(int(a)).bit_length() + int(b), f"{int(a)} << {int(b)}")
        return a << b

    def _width(self, width: int) -> None:
        if width > self.limits.max_format_width:
            limit = self.limits.max_format_width
            raise self.abort(ResourceLimit(f"format width {width} is too large (limit {limit})"))

    def format_spec(self, spec: str) -> str:
        """Refuse format specs whose width or precision would allocate a huge string."""
        for number in _SPEC_NUMBER.findall(spec):
            self._width(int(number))
        return spec

    def format_value(self, value: Any, conversion: int, spec: str) -> str:
        """An f-string field ``{value!conversion:spec}`` with the spec checked."""
        if conversion in _CONVERSIONS:
            value = _CONVERSIONS[conversion](value)
        return format(value, self.format_spec(spec))

    def fstring(self, parts: tuple[str, ...]) -> str:
        """An f-string from its formatted parts, if the result fits the budget."""
        self._seq_len(sum(len(p) for p in parts), "f-string")
        return "".join(parts)

    def starred(self, value: Any) -> Any:
        """A ``*value`` part of a list/tuple/set display, if it fits the budget."""
        if not hasattr(value, "__len__"):
            value = list(self.ticking(value))
        self._seq_len(len(value), "a starred part of a display")
        return value

    def setslice(self, target: Any, lower: Any, upper: Any, step: Any, value: Any) -> None:
        """``target[lower:upper:step] = value``, if the result fits the budget."""
        cut = slice(lower, upper, step)
        if not hasattr(value, "__len__"):
            value = list(self.ticking(value))
        if hasattr(target, "__len__"):
            removed = len(range(*cut.indices(len(target))))
            self._seq_len(len(target) - removed + len(value), "slice assignment")
        target[cut] = value

    def checked_text(self, text: Any, what: str) -> Any:
        """A string built in one C call (``repr``, ``str``, ``format``), checked after:
        it stops a chain that doubles at the first step beyond the budget."""
        if isinstance(text, str | bytes):
            self._seq_len(len(text), what)
        return text

    def mod(self, a: Any, b: Any) -> Any:
        """``a % b``; for %-formatting, widths (literal or ``*``, after a ``(key)`` too)
        are checked first; for integers, the division's cost."""
        self._division(a, b, "%")
        if isinstance(a, str | bytes):
            self._seq_len(printf_length(a, b), "%-formatting")
            text = a if isinstance(a, str) else a.decode("latin-1")
            args = b if isinstance(b, tuple) else (b,)
            star = False
            for width, precision in _PRINTF.findall(text):
                for field in (width, precision):
                    star |= field == "*"
                    if field.isdigit():
                        self._width(int(field))
            if star:
                for arg in args:
                    if is_int(arg):
                        self._width(abs(arg))
        return a % b

    def range(self, *args: int) -> range:
        r = range(*args)
        self._seq_len(len(r), "range")
        return r

    def inplace(self, op: str, target: Any, value: Any) -> Any:
        """``_inplacevar_``: ``x op= value`` with the same checks as ``x = x op value``."""
        fn = self._inplace_ops.get(op)
        if fn is None:
            raise ValueError(f"unsupported augmented operator {op!r}")
        return fn(self, target, value)

    _inplace_ops: ClassVar[dict[str, Callable[[Budget, Any, Any], Any]]] = {
        "+=": lambda s, a, b: s._iadd(a, b),
        "-=": lambda s, a, b: operator.isub(a, b),
        "*=": lambda s, a, b: s.mul(a, b),
        "/=": lambda s, a, b: operator.itruediv(a, b),
        "//=": lambda s, a, b: s.floordiv(a, b),
        "%=": lambda s, a, b: s.mod(a, b),
        "**=": lambda s, a, b: s.pow(a, b),
        "<<=": lambda s, a, b: s.lshift(a, b),
        ">>=": lambda s, a, b: operator.irshift(a, b),
        "&=": lambda s, a, b: operator.iand(a, b),
        "|=": lambda s, a, b: operator.ior(a, b),
        "^=": lambda s, a, b: operator.ixor(a, b),
        "@=": lambda s, a, b: operator.imatmul(a, b),
    }

    def _iadd(self, a: Any, b: Any) -> Any:
        if isinstance(a, SEQUENCES) and hasattr(b, "__len__"):
            self._seq_len(len(a) + len(b), f"{type(a).__name__} += ...")
        return operator.iadd(a, b)


_MEMORY_EVERY = 4095  # ticks between memory checks (a power of two less one)
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def resident_mb() -> int:
    """This process's resident memory in MiB (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(int(fh.read().split()[1]) * _PAGE_MB)
    except (OSError, ValueError, IndexError):
        return 0
