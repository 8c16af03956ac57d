"""The CLEVR DSL: ``add_object(...)``, ``clear()``, ``clevr_material(...)`` and the
universe constants.

Sugar over the same path the trusted builder uses (:func:`addon.build.add_object`), so a
DSL program renders exactly like ``build(scene)``; the objects count against the same
budgets as operator-made ones. ``clevr_material`` hands a bpy-dialect program CLEVR's
shared material (a node tree no script could build: the sandbox allows no node edits);
it is read-only, like every cached asset, and the script assigns it to its own object.
"""

from __future__ import annotations

from typing import Any

import bpy

from ...scenes import universe
from .. import assets
from ..build import add_object as build_object
from .errors import ResourceLimit
from .materials import MaterialProxy, wrap_material
from .objects import ObjectProxy, check_vertices, object_vertices
from .session import ScriptSession


def dsl_namespace(session: ScriptSession) -> dict[str, Any]:
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
        if type(shape) is str and shape in universe.SHAPES:  # else build_object says why
            check_vertices(session, added=len(assets.shape_mesh(shape).vertices))
        obj = build_object(shape, size, material, color, x, y, rotation)
        session.data.add_object(obj, shape, object_vertices(obj))
        return ObjectProxy(session, f"Object({obj.name!r})", obj)

    def clevr_material(material: str, color: str) -> MaterialProxy:
        """CLEVR's shared, read-only material, e.g. ``clevr_material('metal', 'red')``, for
        ``obj.data.materials.append(...)``; ValueError names a bad argument."""
        session.budget.tick()
        if type(material) is not str or type(color) is not str:  # no look-alike keys
            raise TypeError(f"material and color must be str, got {material!r}, {color!r}")
        proxy = wrap_material(session, assets.material(material, color))
        assert proxy is not None  # assets.material never returns None
        return proxy

    def clear() -> None:
        """Remove every object the script added."""
        for obj, _ in session.data.live_objects():
            session.data.forget(obj)
            bpy.data.objects.remove(obj, do_unlink=True)

    return {
        "add_object": add_object,
        "clevr_material": clevr_material,
        "clear": clear,
        "SHAPES": universe.SHAPES,
        "SIZES": dict(universe.SIZES),
        "MATERIALS": universe.MATERIALS,
        "COLORS": {k: tuple(v) for k, v in universe.COLORS.items()},
        "PLACEMENT_BOUNDS": universe.PLACEMENT_BOUNDS,
        "MIN_DIST": universe.MIN_DIST,
        "MARGIN": universe.MARGIN,
    }
