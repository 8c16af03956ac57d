"""Which names a script may use: one rule for every way a name reaches an object."""

from __future__ import annotations

# Attributes of tracebacks, frames, code objects, generators and coroutines that lead to
# frames, code and globals (RestrictedPython's ``INSPECT_ATTRIBUTES``; the ones that hold
# plain ints and strings are left out, as there).
INSPECT_ATTRIBUTES = frozenset(
    {
        "tb_frame", "tb_next", "f_back", "f_builtins", "f_code", "f_generator", "f_globals",
        "f_locals", "f_trace", "co_code", "gi_frame", "gi_code", "gi_yieldfrom", "cr_await",
        "cr_frame", "cr_code", "cr_origin", "ag_await", "ag_frame", "ag_code",
    }
)  # fmt: skip

# Special methods a script's classes may define: the ones LLM-written classes use. They
# run the script's own code, under the same guards, when Python calls them; the methods
# Python calls at surprising times (``__del__``, ``__getattr__``, ``__init_subclass__``,
# ``__set_name__`` ...) stay refused.
SPECIAL_METHODS = frozenset(
    {
        "__init__", "__repr__", "__str__", "__len__", "__iter__", "__next__", "__getitem__",
        "__setitem__", "__contains__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
        "__ge__", "__hash__", "__bool__", "__call__", "__add__", "__sub__", "__mul__",
        "__truediv__", "__neg__", "__abs__",
    }
)  # fmt: skip


def refused_name(name: str) -> str | None:
    """Why an attribute (or import component) name is refused, or None if it is allowed.

    One rule for every way a name reaches an object: ``a.b``, ``getattr``, each component
    of ``import a.b.c``, each name of ``from a import b`` and each ``{0.b}`` format field.
    """
    if name.startswith("_") or name in INSPECT_ATTRIBUTES:
        return f"attribute {name!r} is not accessible in the sandbox"
    return None
