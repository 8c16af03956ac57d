"""Fixtures for the sandbox tests: a Workbench 64 px frame and a short deadline."""

from __future__ import annotations

import numpy as np
import pytest
from derender.scenes.frame import FrameSpec
from derender.scenes.model import Scene

SPEC = FrameSpec(width=64, height=64, engine="workbench", samples=8)
DEADLINE_S = 0.3


@pytest.fixture(scope="module")
def service():
    """A Service on the test frame (short deadline), shared by the module's tests."""
    from derender.addon.sandbox.limits import Limits
    from derender.addon.service import Service

    return Service(SPEC, Limits(deadline_s=DEADLINE_S))


@pytest.fixture(scope="module")
def empty_image(service) -> np.ndarray:
    """The render of the empty frame, taken before any script ran."""
    return service.render_scene(Scene(()), masks=False).image


@pytest.fixture
def run(service):
    """Run a script in the sandbox on the frame (no render); the frame is reset after."""
    from derender.addon.frame import reset
    from derender.addon.sandbox.limits import Limits
    from derender.addon.sandbox.runner import run_script

    def go(script: str, seed: int = 0, **limits):
        reset(SPEC)
        return run_script(script, Limits(deadline_s=DEADLINE_S, **limits), seed)

    yield go
    reset(SPEC)
