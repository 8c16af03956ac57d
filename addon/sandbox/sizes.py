"""Upper bounds on what a call or an operator would build, computed before it runs.

:class:`.limits.Budget` refuses a call whose result would pass the sequence cap; these
bound the result's size from the operands alone (the real call then sees the same
operands: an iterable is materialised once, see :func:`materialized`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


SEQUENCES = (str, bytes, list, tuple)


def printf_length(template: str | bytes, args: Any) -> int:
    """An upper bound on ``template % args`` without its widths (checked apart)."""

    def size(value: Any) -> int:
        return len(value) if isinstance(value, str | bytes) else len(str(value))

    if isinstance(args, dict):
        values: Any = args.values()
    else:
        values = args if isinstance(args, tuple) else (args,)
    marks = template.count("%") if isinstance(template, str) else template.count(b"%")
    fields = max(marks, 1)
    return len(template) + fields * max((size(v) for v in values), default=0)


def kind_of(obj: Any) -> type | None:
    for kind in (str, bytes, list, int):
        if isinstance(obj, kind) and not isinstance(obj, bool):
            return kind
    return None


def kind_of_type(cls: type) -> type | None:
    for kind in (str, bytes, list, int):
        if issubclass(cls, kind) and not issubclass(cls, bool):
            return kind
    return None


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = 0) -> Any:
    value = args[index] if len(args) > index else kwargs.get(name, default)
    return int(value) if is_int(value) else 0  # a wrong type fails in the real method


def _replace_bound(s: Any, args: tuple, kwargs: dict) -> int:
    if len(args) < 2 or not all(isinstance(a, str | bytes) for a in args[:2]):
        return len(s)
    old, new = args[0], args[1]
    count = (len(s) + 1) if not old else s.count(old)
    limit = _arg(args, kwargs, 2, "count", -1)
    if limit >= 0:
        count = min(count, limit)
    return len(s) + count * max(0, len(new) - len(old))


def _translate_bound(s: Any, args: tuple, kwargs: dict) -> int:
    table = args[0] if args else kwargs.get("table")
    values = table.values() if isinstance(table, dict) else table if isinstance(table, list) else ()
    longest = max((len(v) for v in values if isinstance(v, str | bytes)), default=1)
    return len(s) * max(longest, 1)


def materialized(name: str, args: tuple) -> tuple:
    """``join``/``extend`` take any iterable: make it a list once, so its size is known
    and the real call sees the same items."""
    if name in ("join", "extend") and args and not isinstance(args[0], list | tuple):
        return (list(args[0]), *args[1:])
    return args


def _items_length(items: Any) -> int:
    return sum(len(i) if isinstance(i, str | bytes) else 0 for i in items)


# (type, method) -> upper bound on the length of the result, from (obj, args, kwargs).
GROWTH: dict[tuple[type, str], Callable[[Any, tuple, dict], int]] = {
    **{
        (kind, name): (lambda s, a, k: _arg(a, k, 0, "width"))
        for kind in (str, bytes)
        for name in ("ljust", "rjust", "center", "zfill")
    },
    **{
        (kind, "expandtabs"): (lambda s, a, k: len(s) * max(1, _arg(a, k, 0, "tabsize", 8)))
        for kind in (str, bytes)
    },
    **{(kind, "replace"): _replace_bound for kind in (str, bytes)},
    **{(kind, "translate"): _translate_bound for kind in (str, bytes)},
    **{
        (kind, "join"): (
            lambda s, a, k: (
                _items_length(a[0]) + len(s) * max(len(a[0]) - 1, 0)
                if a and isinstance(a[0], list | tuple)
                else 0
            )
        )
        for kind in (str, bytes)
    },
    (int, "to_bytes"): lambda s, a, k: _arg(a, k, 0, "length", 1),
    (list, "extend"): lambda s, a, k: len(s) + (len(a[0]) if a and hasattr(a[0], "__len__") else 0),
}
