"""Shared fixtures. Blender tests use the pip ``bpy`` module (one Blender per process)."""

from __future__ import annotations

import pytest


@pytest.fixture
def bpy_empty():
    """bpy reset to an empty factory scene; skips nothing: bpy is a dev dependency."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy
