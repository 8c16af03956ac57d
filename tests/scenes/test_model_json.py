"""Scene validation and CLEVR JSON round trips (example-based and property-based)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from derender.scenes import (
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
from hypothesis import given, settings
from hypothesis import strategies as st

SAMPLE = Path(__file__).parents[1] / "data" / "clevr_scene_sample.json"


def test_clevr_generator_output_loads_and_round_trips_exactly():
    raw = json.loads(SAMPLE.read_text())
    scene = scene_from_clevr(copy.deepcopy(raw))
    assert [o.shape for o in scene.objects] == ["cylinder", "cube", "sphere"]
    cube = scene.objects[1]
    assert cube.z == pytest.approx(0.7 / math.sqrt(2), abs=1e-6)
    assert cube.rotation == 12.548237864751286  # radians, as Blender read CLEVR's raw value
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
    # CLEVR's pixel_coords came from a jittered camera, so only check the projection
    # convention on the un-jittered frame: the origin lands at the image centre.
    px, py, depth = FrameSpec().pixel_coords((0.0, 0.0, 0.0))
    assert (px, py) == (160, 120)
    assert depth == pytest.approx(math.dist((7.4811, -6.5076, 5.3437), (0, 0, 0)))
    # "left" in CLEVR's directions is to the left in the image.
    lx, _, _ = FrameSpec().pixel_coords(tuple(v * 2 for v in FrameSpec().directions()["left"]))
    assert lx < 160


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
