"""Scene validation and CLEVR JSON round trips (example-based and property-based)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from derender.scenes import (
    Camera,
    FrameSpec,
    Scene,
    SceneObject,
    generate_scene,
    load_scenes,
    scene_from_clevr,
    scene_from_json,
    scene_to_clevr,
    scene_to_json,
    universe,
)
from derender.scenes.clevr_json import with_fitted_camera
from hypothesis import given, settings
from hypothesis import strategies as st

SAMPLE = Path(__file__).parents[1] / "data" / "clevr_scene_sample.json"


def test_clevr_v1_scene_loads_rests_on_the_floor_and_round_trips_exactly():
    raw = json.loads(SAMPLE.read_text())  # CLEVR_val_000000
    scene = scene_from_clevr(copy.deepcopy(raw))
    assert [o.shape for o in scene.objects] == ["cylinder", "cube", "cylinder", "sphere", "cube"]
    cube = scene.objects[1]
    assert cube.z == pytest.approx(0.7, abs=1e-6)  # CLEVR's large cube: no / sqrt(2)
    for o in scene.objects:  # every object rests on the floor at its CLEVR size
        assert o.z == pytest.approx(o.resting_z, abs=1e-6) and o.radius == o.resting_z
    assert cube.rotation == 243.405459279722  # radians, as Blender read CLEVR's raw value
    assert scene_to_clevr(scene) == raw
    assert json.loads(scene_to_json(scene)) == raw


def test_collection_files_load(tmp_path):
    raw = json.loads(SAMPLE.read_text())
    (tmp_path / "scenes.json").write_text(json.dumps({"info": {}, "scenes": [raw, raw]}))
    assert len(load_scenes(tmp_path / "scenes.json")) == 2
    assert load_scenes(SAMPLE)[0] == scene_from_clevr(raw)


def test_computed_directions_match_clevr_camera():
    raw = json.loads(SAMPLE.read_text())
    ours = FrameSpec().directions()
    for name, vec in raw["directions"].items():
        assert ours[name] == pytest.approx(vec, abs=1e-4), name


def test_pixel_coords_match_clevr_projection():
    # The projection convention on the un-jittered frame (CLEVR v1.0's 480x320): the
    # origin lands at the image centre.
    px, py, depth = FrameSpec().pixel_coords((0.0, 0.0, 0.0))
    assert (px, py) == (240, 160)
    assert depth == pytest.approx(math.dist((7.4811, -6.5076, 5.3437), (0, 0, 0)), abs=1e-4)
    # "left" in CLEVR's directions is to the left in the image.
    lx, _, _ = FrameSpec().pixel_coords(tuple(v * 2 for v in FrameSpec().directions()["left"]))
    assert lx < 240


def _jitter_bound(frame: FrameSpec, points: list) -> float:
    """The largest pixel shift CLEVR's camera jitter (±0.5 m per axis) gives ``points``,
    over the 8 corners of the jitter box (the projection is smooth and nearly linear)."""
    base = [frame.pixel_coords(p)[:2] for p in points]
    worst = 0.0
    for corner in ((sx, sy, sz) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)):
        loc = tuple(c + 0.5 * s for c, s in zip(frame.camera.location, corner, strict=True))
        moved = FrameSpec(camera=Camera(location=loc))
        for (bx, by), p in zip(base, points, strict=True):
            mx, my, _ = moved.pixel_coords(p)
            worst = max(worst, abs(mx - bx), abs(my - by))
    return worst


def test_clevr_pixel_coords_are_reproduced_within_the_jitter_and_exactly_given_it():
    scene = scene_from_clevr(json.loads(SAMPLE.read_text()))
    frame = FrameSpec()  # 480x320, CLEVR v1.0's size
    points = [o.position for o in scene.objects]
    bound = _jitter_bound(frame, points)
    for o in scene.objects:  # the un-jittered camera: within what the jitter can move
        px, py, _ = frame.pixel_coords(o.position)
        assert abs(px - o.pixel_coords[0]) <= bound and abs(py - o.pixel_coords[1]) <= bound
    assert max(abs(frame.pixel_coords(p)[0] - o.pixel_coords[0])
               for p, o in zip(points, scene.objects, strict=True)) > 2  # fmt: skip
    fitted = with_fitted_camera(scene, frame)  # the camera recovered from pixel_coords
    posed = frame.posed(fitted.extra)
    jitter = [a - b for a, b in zip(posed.camera.location, frame.camera.location, strict=True)]
    assert all(abs(d) <= 0.5 for d in jitter)  # within CLEVR's jitter
    for o in scene.objects:  # and every pixel_coords exactly, the depth to 5 mm
        px, py, depth = posed.pixel_coords(o.position)
        assert (px, py) == tuple(o.pixel_coords[:2])
        assert depth == pytest.approx(o.pixel_coords[2], abs=5e-3)
    assert fitted.stripped().extra["frame_pose"] == posed.pose()  # it travels with the scene
    with pytest.raises(ValueError, match="pixel_coords"):
        with_fitted_camera(scene.stripped(), frame)


@pytest.mark.parametrize(
    "field, value",
    [
        ("shape", "pyramid"),
        ("size", "huge"),
        ("material", "glass"),
        ("color", "pink"),
        ("x", float("nan")),
        ("y", "1.0"),
        ("rotation", float("inf")),
    ],
)
def test_invalid_object_names_field_and_value(field, value):
    kwargs = dict(shape="cube", size="large", material="metal", color="red", x=0.0, y=0.0)
    kwargs[field] = value
    with pytest.raises(ValueError, match=field) as err:
        SceneObject(**kwargs)
    assert repr(value)[:4] in str(err.value)


def test_bad_json_is_a_value_error():
    with pytest.raises(ValueError, match="not valid JSON"):
        scene_from_json("{")
    with pytest.raises(ValueError, match=r"objects\[0\]"):
        scene_from_clevr({"objects": [{"shape": "cube"}]})


objects = st.builds(
    SceneObject,
    shape=st.sampled_from(universe.SHAPES),
    size=st.sampled_from(tuple(universe.SIZES)),
    material=st.sampled_from(universe.MATERIALS),
    color=st.sampled_from(tuple(universe.COLORS)),
    x=st.floats(-10, 10, allow_nan=False),
    y=st.floats(-10, 10, allow_nan=False),
    rotation=st.floats(-1e3, 1e3, allow_nan=False),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(objects, max_size=12))
def test_json_round_trip_property(objs):
    scene = Scene(tuple(objs))
    back = scene_from_json(scene_to_json(scene))
    assert back.stripped() == scene.stripped()
    assert scene_to_json(back) == scene_to_json(scene)


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["shape", "size", "material", "color"]),
    value=st.text(max_size=8),
)
def test_validation_property_rejects_everything_outside_the_universe(field, value):
    allowed = {
        "shape": universe.SHAPES,
        "size": tuple(universe.SIZES),
        "material": universe.MATERIALS,
        "color": tuple(universe.COLORS),
    }[field]
    kwargs = dict(shape="cube", size="large", material="metal", color="red", x=0.0, y=0.0)
    kwargs[field] = value
    if value in allowed:
        assert getattr(SceneObject(**kwargs), field) == value
    else:
        with pytest.raises(ValueError, match=field):
            SceneObject(**kwargs)


def test_generated_scene_survives_round_trip_with_derived_fields():
    scene = generate_scene(3, 4)
    doc = scene_to_clevr(scene)
    assert set(doc) >= {"objects", "directions", "relationships", "image_index"}
    assert scene_from_clevr(doc) == scene
