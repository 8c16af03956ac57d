"""Fixtures for the Blender render-core tests (one Blender per pytest process)."""

from __future__ import annotations

import pytest
from derender.scenes.frame import FrameSpec

# Small, fast frames: Workbench and Cycles (few samples, fixed seed) at 64 px.
SPECS: dict[str, FrameSpec] = {
    "workbench": FrameSpec(width=64, height=64, engine="workbench", samples=8),
    "cycles": FrameSpec(width=64, height=64, engine="cycles", samples=4, seed=7),
    "eevee": FrameSpec(width=64, height=64, engine="eevee", samples=4),
}


@pytest.fixture
def spec_for():
    """engine name -> the small test FrameSpec of that engine."""
    return SPECS.__getitem__


@pytest.fixture
def wb_frame():
    """The Workbench test frame, reset before and after the test (built on first use)."""
    from derender.addon import frame

    frame.reset(SPECS["workbench"])
    yield SPECS["workbench"]
    frame.reset(SPECS["workbench"])


@pytest.fixture
def derender_addon():
    """The add-on enabled as Blender enables it (preferences included) on an empty factory
    file, at Workbench 64x64; disabled afterwards (panel/operator tests)."""
    import addon_utils
    import bpy

    def fail(exc: BaseException) -> None:
        raise exc

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("derender", default_set=True, handle_error=fail)
    props = bpy.context.scene.derender
    props.engine, props.width, props.height, props.samples = "workbench", 64, 64, 8
    yield bpy
    addon_utils.disable("derender", default_set=True, handle_error=fail)
