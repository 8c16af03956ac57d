"""The CLEVR DSL: ``add_object(...)``, ``clear()`` and the universe constants.

Sugar over the same path the trusted builder uses (:func:`addon.build.add_object`), so a
DSL program renders exactly like ``build(scene)``; the objects count against the same
budgets as operator-made ones.
"""

from __future__ import annotations

from typing import Any

import bpy

from ...scenes import universe
from ..build import add_object as build_object
from .errors import ResourceLimit
from .objects import ObjectProxy, check_vertices, object_vertices
from .session import Session

# Evaluated vertices of one DSL object (the cube's bevel dominates): a safe upper bound.
_DSL_VERTICES = 600


def dsl_namespace(session: Session) -> dict[str, Any]:
    """The names a script gets without importing anything."""

    def add_object(
        shape: str,
        size: str,
        material: str,
        color: str,
        x: float,
        y: float,
        rotation: float = 0.0,
    ) -> ObjectProxy:
        """Add one CLEVR object resting on the ground; ValueError names a bad argument."""
        session.budget.tick()
        if len(session.data.live_objects()) >= session.limits.max_objects:
            raise session.budget.abort(
                ResourceLimit(f"object limit {session.limits.max_objects} reached")
            )
        check_vertices(session, added=_DSL_VERTICES)
        obj = build_object(shape, size, material, color, x, y, rotation)
        session.data.add_object(obj, shape, object_vertices(obj))
        return ObjectProxy(session, f"Object({obj.name!r})", obj)

    def clear() -> None:
        """Remove every object the script added."""
        for obj, _ in session.data.live_objects():
            session.data.forget(obj)
            bpy.data.objects.remove(obj, do_unlink=True)

    return {
        "add_object": add_object,
        "clear": clear,
        "SHAPES": universe.SHAPES,
        "SIZES": dict(universe.SIZES),
        "MATERIALS": universe.MATERIALS,
        "COLORS": {k: tuple(v) for k, v in universe.COLORS.items()},
        "PLACEMENT_BOUNDS": universe.PLACEMENT_BOUNDS,
        "MIN_DIST": universe.MIN_DIST,
        "MARGIN": universe.MARGIN,
    }
