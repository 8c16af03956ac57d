"""Outside Blender: supervisor, broker, worker launcher, batch jobs. Never imports bpy.

``RayFarm`` (:mod:`.ray_farm`) is imported on first use: Ray is an optional extra
(``derender[ray]``), and importing this package never imports it."""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "RayFarm":
        from .ray_farm import RayFarm

        return RayFarm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
