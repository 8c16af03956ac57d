"""A jittered target's frame: the built frame moves its camera and lights, no rebuild."""

from __future__ import annotations

import numpy as np
from derender.addon import build, frame, frame_parts, render
from derender.scenes import generate_scene
from derender.scenes.frame import FrameSpec


def test_move_puts_camera_and_lights_at_the_pose_without_a_rebuild(wb_frame):
    spec = wb_frame.with_size(96, 64)
    frame.reset(spec)
    scene = generate_scene(3, 1)
    build.build(scene)
    before = render.render_image(spec)
    built = {k: o.as_pointer() for k, o in frame._frame.objects.items()}
    jittered = spec.jittered("3:1")
    assert frame.move(jittered) is True
    assert {k: o.as_pointer() for k, o in frame._frame.objects.items()} == built
    assert frame.frame_differences(jittered) == []
    cam = frame._frame.objects["camera"]
    want = frame_parts.look_at(jittered.camera.location, jittered.camera.target)
    assert np.allclose(np.array(cam.matrix_world), np.array(want), atol=1e-6)
    moved = render.render_image(jittered)
    assert not np.array_equal(moved, before)  # the objects are seen from elsewhere
    frame.reset(jittered)  # reset to the same pose keeps it (and removes the objects)
    assert {k: o.as_pointer() for k, o in frame._frame.objects.items()} == built
    build.build(scene)
    assert np.array_equal(render.render_image(jittered), moved)
    assert frame.move(spec) is True
    assert np.array_equal(render.render_image(spec), before)


def test_anything_but_the_pose_is_not_a_move(wb_frame):
    spec = wb_frame
    assert frame.move(spec.with_size(48, 48)) is False
    assert frame.move(FrameSpec(width=64, height=64, engine="cycles")) is False
    assert frame._frame.spec == spec  # nothing changed
    frame.reset(spec.with_size(48, 48))  # reset rebuilds for those
    assert frame.frame_differences(spec.with_size(48, 48)) == []


def test_an_edit_before_a_move_is_found_not_baked_into_the_new_snapshots(wb_frame):
    spec = wb_frame
    frame.reset(spec)
    ground = frame._frame.objects["ground"]
    ground.scale = (0.5, 0.5, 0.5)  # as a script that got past the proxies would
    jittered = spec.jittered("7:2")
    frame.reset(jittered)  # checked at the old pose first, then rebuilt at the new one
    assert tuple(frame._frame.objects["ground"].scale) != (0.5, 0.5, 0.5)
    assert frame._frame.spec == jittered
    assert frame.frame_differences(jittered) == []
