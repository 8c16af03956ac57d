"""CLEVR's visibility rule on generated targets: every object has enough visible pixels."""

from __future__ import annotations

import numpy as np
import pytest
from derender.addon import build, render
from derender.scenes import GeneratorConfig, enough_pixels, generate_scene
from derender.scenes.frame import FrameSpec

# A small frame keeps 1,000 targets fast; CLEVR's 200 px at 320x240 scale to 18 px here.
SPEC = FrameSpec(width=96, height=64, engine="workbench", samples=1)


def test_the_threshold_scales_with_the_frame():
    assert SPEC.min_pixels_per_object() == 18
    assert FrameSpec(width=320, height=240).min_pixels_per_object() == 200
    assert FrameSpec().min_pixels_per_object() == 450  # CLEVR v1.0's 480x320
    # the sensor spans the larger side: a square frame of the same width, the same threshold
    assert FrameSpec(width=480, height=480).min_pixels_per_object() == 450
    masks = np.zeros((64, 96), np.int32)
    masks[:3, :6], masks[10:20, 10:20] = 1, 2  # 18 px and 100 px
    assert enough_pixels(masks, 2, SPEC) and not enough_pixels(masks, 3, SPEC)
    masks[0, 0] = 0
    assert not enough_pixels(masks, 2, SPEC)


@pytest.mark.slow
def test_no_seeded_target_has_an_object_under_the_threshold(built_frame, monkeypatch):
    """1,000 seeded targets made as a trusted target worker makes them. Every mask the
    hook judged is recorded: each returned scene is the last candidate it accepted, and in
    that candidate's masks every object has at least the threshold (counted here)."""
    judged: list[np.ndarray] = []
    masks_of = render.render_masks

    def recording(objects, spec):  # type: ignore[no-untyped-def]
        judged.append(masks_of(objects, spec))
        return judged[-1]

    monkeypatch.setattr(render, "render_masks", recording)
    check, config = render.visibility_check(built_frame, SPEC), GeneratorConfig(frame=SPEC)
    threshold, rejected, candidates = SPEC.min_pixels_per_object(), 0, 0
    for index in range(1000):
        start = len(judged)
        scene = generate_scene(2024, index, config, visible=check)
        tried = judged[start:]
        candidates += len(tried)
        counts = np.bincount(tried[-1].ravel(), minlength=len(scene) + 1)[1:]
        assert len(counts) == len(scene) and counts.min() >= threshold, (index, counts)
        for earlier in tried[:-1]:  # every rejected candidate (n objects too) hid one
            rejected += 1
            assert np.bincount(earlier.ravel(), minlength=len(scene) + 1)[1:].min() < threshold
    assert rejected > 0 and candidates == 1000 + rejected  # the rule did fire
    built_frame.reset(SPEC)


def test_accepted_targets_pass_an_independent_render_also_jittered(built_frame):
    """A fresh mask render of generated targets (plain and jittered) holds the rule."""
    check = render.visibility_check(built_frame, SPEC)
    for jitter in (False, True):
        config = GeneratorConfig(frame=SPEC, jitter=jitter)
        for index in range(0, 400, 20):
            scene = generate_scene(5, index, config, visible=check)
            posed = SPEC.posed(scene.extra)
            built_frame.reset(posed)
            masks = render.render_masks(build.build(scene), posed)
            assert enough_pixels(masks, len(scene), posed), (jitter, index)
    built_frame.reset(SPEC)
