"""Shared fixtures. Blender tests use the pip ``bpy`` module (one Blender per process)."""

from __future__ import annotations

import importlib.util

import pytest

# tests/trainers runs in its own environment (.venv-trainers: the trainer packages, derender
# client-side, no bpy), as `make test` does: .venv-trainers/bin/python -m pytest
# tests/trainers. An environment without the trainer packages does not collect it.
collect_ignore = [] if importlib.util.find_spec("trl") else ["trainers"]


@pytest.fixture
def bpy_empty():
    """bpy reset to an empty factory scene; skips nothing: bpy is a dev dependency."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy
