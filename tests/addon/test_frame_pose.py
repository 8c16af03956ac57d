"""A jittered target's frame: the built frame moves its camera and lights, no rebuild."""

from __future__ import annotations

import numpy as np
from derender.addon import build, frame_parts, render
from derender.scenes import generate_scene
from derender.scenes.frame import FrameSpec


def test_move_puts_camera_and_lights_at_the_pose_without_a_rebuild(built_frame, wb_frame):
    spec = wb_frame.with_size(96, 64)
    built_frame.reset(spec)
    scene = generate_scene(3, 1)
    build.build(scene)
    before = render.render_image(spec)
    built = {k: o.as_pointer() for k, o in built_frame._built.objects.items()}
    jittered = spec.jittered("3:1")
    assert built_frame.move(jittered) is True
    assert {k: o.as_pointer() for k, o in built_frame._built.objects.items()} == built
    assert built_frame.differences(jittered) == []
    cam = built_frame._built.objects["camera"]
    want = frame_parts.look_at(jittered.camera.location, jittered.camera.target)
    assert np.allclose(np.array(cam.matrix_world), np.array(want), atol=1e-6)
    moved = render.render_image(jittered)
    assert not np.array_equal(moved, before)  # the objects are seen from elsewhere
    built_frame.reset(jittered)  # reset to the same pose keeps it (and removes the objects)
    assert {k: o.as_pointer() for k, o in built_frame._built.objects.items()} == built
    build.build(scene)
    assert np.array_equal(render.render_image(jittered), moved)
    assert built_frame.move(spec) is True
    assert np.array_equal(render.render_image(spec), before)


def test_anything_but_the_pose_is_not_a_move(built_frame, wb_frame):
    spec = wb_frame
    assert built_frame.move(spec.with_size(48, 48)) is False
    assert built_frame.move(FrameSpec(width=64, height=64, engine="cycles")) is False
    assert built_frame._built.spec == spec  # nothing changed
    built_frame.reset(spec.with_size(48, 48))  # reset rebuilds for those
    assert built_frame.differences(spec.with_size(48, 48)) == []


def test_an_edit_before_a_move_is_found_not_baked_into_the_new_snapshots(built_frame, wb_frame):
    spec = wb_frame
    built_frame.reset(spec)
    ground = built_frame._built.objects["ground"]
    ground.scale = (0.5, 0.5, 0.5)  # as a script that got past the proxies would
    jittered = spec.jittered("7:2")
    built_frame.reset(jittered)  # checked at the old pose first, then rebuilt at the new one
    assert tuple(built_frame._built.objects["ground"].scale) != (0.5, 0.5, 0.5)
    assert built_frame._built.spec == jittered
    assert built_frame.differences(jittered) == []
