"""The proxy base class: every object a script gets from bpy is one of these.

A proxy holds the real Blender object in a slot whose name starts with ``_`` (which no
agent code can spell) and answers attribute reads and writes only through
:meth:`Proxy.sbx_get` / :meth:`Proxy.sbx_set`, which subclasses implement as explicit
allowlists. An attribute that Blender has but the allowlist lacks is a violation; one
that Blender does not have either is an ordinary ``AttributeError`` (a typo).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import bpy

from .session import ScriptSession


class Proxy:
    """Base of all capability proxies; ``label`` names it in messages (``bpy.ops.mesh``)."""

    __slots__ = ("_label", "_real", "_s")

    def __init__(self, session: ScriptSession, label: str, real: Any = None) -> None:
        object.__setattr__(self, "_s", session)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_real", real)

    # -- the guarded interface -----------------------------------------------------------
    def sbx_get(self, name: str) -> Any:
        return self.sbx_missing(name)

    def sbx_set(self, name: str, value: Any) -> None:
        if name in self.sbx_names():
            self._s.violation(f"{self._label}.{name} is read-only in the sandbox")
        self.sbx_missing(name)

    def sbx_names(self) -> frozenset[str]:
        """Readable attribute names (for messages and ``dir``-like hints)."""
        return frozenset()

    def sbx_mapping_get(self, missing: tuple[type[Exception], ...] = (KeyError,)) -> Any:
        """``get(key, default=None)`` for a proxy indexed like a mapping (``nodes.get``)."""

        def get(key: Any, default: Any = None) -> Any:
            try:
                return self[key]  # type: ignore[index]  # subclasses define __getitem__
            except missing:
                return default

        return get

    def sbx_missing(self, name: str) -> Any:
        real = self._real
        if real is not None and _has(real, name):
            self._s.violation(f"{self._label}.{name} is not allowed in the sandbox")
        raise AttributeError(f"{self._label} has no attribute {name!r}")

    # -- Python protocol (only import-from and str() reach these directly) -----------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.sbx_get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self.sbx_set(name, value)

    def __delattr__(self, name: str) -> None:
        self._s.violation(f"cannot delete {self._label}.{name}")

    def __repr__(self) -> str:
        return f"<{self._label}>"


def _has(real: Any, name: str) -> bool:
    try:
        return hasattr(real, name)
    except Exception:  # a broken property is still "there"
        return True


class Namespace(Proxy):
    """A module-like proxy over a fixed mapping (``math``, ``mathutils``, ``bpy.ops.mesh``)."""

    __slots__ = ("_members", "_strict")

    def __init__(
        self,
        session: ScriptSession,
        label: str,
        members: Mapping[str, Any],
        real: Any = None,
        strict: bool = False,
    ) -> None:
        super().__init__(session, label, real)
        object.__setattr__(self, "_members", dict(members))
        object.__setattr__(self, "_strict", strict)

    def sbx_missing(self, name: str) -> Any:
        # strict: every other name is refused (bpy.ops answers any name, so "does Blender
        # have it" cannot tell a typo from bpy.ops.wm).
        if self._strict:
            self._s.violation(f"{self._label}.{name} is not allowed in the sandbox")
        return super().sbx_missing(name)

    def sbx_get(self, name: str) -> Any:
        if name not in self._members:
            return self.sbx_missing(name)
        member = self._members[name]
        return member.make() if isinstance(member, _Lazy) else member

    def sbx_names(self) -> frozenset[str]:
        return frozenset(self._members)


class _Lazy:
    """A namespace member built on access (a fresh proxy over current Blender state)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def lazy(make: Callable[[], Any]) -> Any:
    return _Lazy(make)


def plain(value: Any) -> Any:
    """bpy arrays as tuples (they have no safe attributes of their own)."""
    if isinstance(value, bpy.types.bpy_prop_array):
        return tuple(value)
    return value


def owned(session: ScriptSession, idb: Any, what: str) -> None:
    if not session.data.owns(idb):
        raise ValueError(
            f"{what} {idb.name!r} is a shared CLEVR asset and read-only; "
            "create your own with bpy.ops.mesh.primitive_*_add / bpy.data.materials.new"
        )
