"""addon.service: the ground-truth programs through the sandbox match the trusted build."""

from __future__ import annotations

import numpy as np
import pytest
from derender.scenes.frame import FrameSpec
from derender.scenes.generator import GeneratorConfig, generate_scene
from derender.scenes.model import Scene, SceneObject
from derender.scenes.programs import bpy_program, dsl_program

SPEC = FrameSpec(width=64, height=64, engine="workbench", samples=8)
SCENES = [generate_scene(11, i, GeneratorConfig()) for i in range(20)]
TOL = 1e-4


@pytest.fixture(scope="module")
def service():
    from derender.addon.sandbox.limits import ScriptLimits
    from derender.addon.service import Service

    return Service(SPEC, ScriptLimits(deadline_s=1.0))


def assert_same_scene(got: Scene, want: Scene) -> None:
    """Attributes exact; x, y, z, rotation within TOL (rotation is exact up to float32:
    it is compared as stored, no symmetry folding needed)."""
    assert len(got) == len(want)
    for a, b in zip(got.objects, want.objects, strict=True):
        assert a.attributes() == b.attributes()
        for name in ("x", "y", "z", "rotation"):
            assert abs(getattr(a, name) - getattr(b, name)) <= TOL, (name, a, b)


@pytest.mark.parametrize("index", range(len(SCENES)))
def test_ground_truth_programs_match_the_trusted_build(service, index: int) -> None:
    scene = SCENES[index]
    target = service.render_scene(scene)
    for program in (bpy_program, dsl_program):
        result = service.step(program(scene), seed=index)
        assert result.outcome == "ok", (program.__name__, result.message, result.line)
        assert np.array_equal(result.image, target.image), program.__name__
        assert np.array_equal(result.masks, target.masks), program.__name__
        assert result.unmapped == 0 and not result.recycle
        assert_same_scene(result.scene, scene.stripped())


def test_step_leaves_exactly_the_frame(service) -> None:

    empty = service.render_scene(Scene(()), masks=False).image
    result = service.step("add_object('cube', 'large', 'metal', 'red', 0, 0)\nprint('hi')")
    assert result.outcome == "ok" and result.stdout == "hi\n"
    assert not np.array_equal(result.image, empty)
    assert service.built_frame.differences(SPEC) == []
    again = service.step("x = 1", masks=False)
    assert again.outcome == "ok" and np.array_equal(again.image, empty)
    assert again.scene == Scene(()) and again.masks is None


def test_failed_steps_have_no_image_and_typed_outcomes(service) -> None:
    cases = {
        "x = (": ("syntax_error", False),
        "add_object('cube', 'huge', 'metal', 'red', 0, 0)": ("runtime_error", False),
        "import os": ("sandbox_violation", True),
        "while True:\n    pass": ("timeout", False),
    }
    for script, (outcome, recycle) in cases.items():
        result = service.step(script)
        assert (result.outcome, result.recycle) == (outcome, recycle), result.message
        assert result.image is None and result.masks is None and result.scene is None
        assert result.message and "script" in result.timings


def test_timings_are_reported(service) -> None:
    result = service.step("add_object('sphere', 'small', 'rubber', 'blue', 1, 1)")
    assert {"script", "verify", "render", "masks", "readback", "reset"} <= set(result.timings)
    assert all(v >= 0 for v in result.timings.values())
    rendered = service.render_scene(SCENES[0], masks=False)
    assert rendered.masks is None and {"build", "render", "reset"} <= set(rendered.timings)


def test_an_escape_that_tampers_is_caught_and_undone(service, monkeypatch) -> None:
    """Simulate a sandbox escape: the 'script' moves the camera through raw bpy."""
    import bpy
    from derender.addon import service as service_module

    real_run = service_module.run_script

    def escaping_run(script, frame, limits, seed):
        bpy.context.scene.camera.location.x += 2.0
        return real_run(script, frame, limits, seed)

    empty = service.render_scene(Scene(()), masks=False).image
    monkeypatch.setattr(service_module, "run_script", escaping_run)
    result = service.step("x = 1")
    monkeypatch.undo()
    assert (result.outcome, result.recycle, result.image) == ("frame_tampered", True, None)
    assert "Camera" in result.message
    assert service.built_frame.differences(SPEC) == []
    assert np.array_equal(service.render_scene(Scene(()), masks=False).image, empty)


def test_renders_get_an_asset_edited_by_an_escape_as_built(service, monkeypatch) -> None:
    """An escape edits a cached material that its own step does not use; the next step and
    the next target render that use it get it as built, and that step asks for its
    worker's replacement (the edit cannot be told from one it made itself)."""
    from derender.addon import assets
    from derender.addon import service as service_module

    scene = Scene((SceneObject("cube", "large", "metal", "red", 0.0, 0.0),))
    script = dsl_program(scene)
    clean, target = service.step(script, masks=False), service.render_scene(scene, masks=False)
    real_run = service_module.run_script

    def escaping_run(script, frame, limits, seed):
        assets.material("metal", "red").diffuse_color = (0.0, 1.0, 0.0, 1.0)
        return real_run(script, frame, limits, seed)

    monkeypatch.setattr(service_module, "run_script", escaping_run)
    escaped = service.step("x = 1", masks=False)
    monkeypatch.undo()
    assert (escaped.outcome, escaped.recycle, clean.recycle) == ("ok", False, False)
    later = service.step(script, masks=False)
    assert (later.outcome, later.recycle) == ("ok", True)
    assert np.array_equal(later.image, clean.image) and later.scene == clean.scene
    # trusted renders too (the edit stands for agent code, after which the runner distrusts)
    assets.material("metal", "red").diffuse_color = (0.0, 1.0, 0.0, 1.0)
    service.built_frame.distrust()
    assert np.array_equal(service.render_scene(scene, masks=False).image, target.image)


def test_a_literal_program_renders_as_its_compiled_self(service) -> None:
    """Read as data (no agent code, no frame check), a DSL program renders and reads back
    exactly as the same program run as Python does."""
    from derender.addon.sandbox.literal import literal_program

    script = dsl_program(generate_scene(3, 1))
    assert literal_program(script) is not None
    literal = service.step(script, masks=False)
    assert service.built_frame.intact
    compiled = service.step(script + "nothing = 0\n", masks=False)
    assert literal.outcome == compiled.outcome == "ok"
    assert np.array_equal(literal.image, compiled.image) and literal.scene == compiled.scene


def test_once_distrusted_a_literal_program_step_checks_the_frame(service) -> None:
    """In the GUI a person may change anything between requests (the session distrusts
    the frame before each): a literal program runs no agent code, but its step still
    finds the moved camera, and the frame is rebuilt."""
    import bpy

    script = dsl_program(generate_scene(3, 2))
    service.built_frame.distrust()
    bpy.context.scene.camera.location.x += 2.0
    result = service.step(script, masks=False)
    assert (result.outcome, result.recycle) == ("frame_tampered", True)
    assert "Camera" in result.message
    assert service.built_frame.intact and service.built_frame.differences(SPEC) == []
    assert service.step(script, masks=False).outcome == "ok"


def test_render_failure_is_a_typed_outcome(service, monkeypatch) -> None:
    from derender.addon import render

    def broken(spec):
        raise render.RenderFailed("the GPU went away")

    monkeypatch.setattr(render, "render_image", broken)
    result = service.step("add_object('cube', 'small', 'metal', 'red', 0, 0)")
    assert (result.outcome, result.recycle, result.image) == ("render_error", True, None)
    assert result.message == "RenderFailed: the GPU went away"
