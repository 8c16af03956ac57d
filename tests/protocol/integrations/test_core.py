"""Ground-truth parsing and configuration of the shared adapter core (no farm needed)."""

from __future__ import annotations

import json

import pytest
from derender.protocol.integrations import core
from derender.protocol.messages import SceneTarget, SeedTarget, TargetRef
from derender.scenes import generate_scene, scene_to_clevr


@pytest.mark.parametrize(
    ("ground_truth", "expected"),
    [
        ('{"target": {"seed": 3, "index": 7}}', SeedTarget(3, 7)),
        ({"target": {"seed": 3}}, SeedTarget(3, 0)),
        ('{"seed": 5, "index": 1}', SeedTarget(5, 1)),
        ("t-0123456789abcdef", TargetRef("t-0123456789abcdef")),
        (b'{"target_id": "t-00"}', TargetRef("t-00")),
    ],
)
def test_parse_ground_truth(ground_truth, expected):
    assert core.parse_ground_truth(ground_truth) == expected


def test_scene_ground_truth_round_trips_through_json():
    scene = generate_scene(1, 2)
    gt = core.ground_truth_json(SceneTarget(scene))
    parsed = core.parse_ground_truth(gt)
    assert isinstance(parsed, SceneTarget)
    assert scene_to_clevr(parsed.scene)["objects"] == scene_to_clevr(scene)["objects"]
    assert json.loads(core.ground_truth_json(SeedTarget(4, 2))) == {
        "target": {"seed": 4, "index": 2}
    }


@pytest.mark.parametrize("bad", ["not json", '{"target": 3}', '{"seed": -1}', "[1, 2]", 17])
def test_bad_ground_truth_names_the_value(bad):
    with pytest.raises(ValueError, match="ground truth"):
        core.parse_ground_truth(bad)


def test_missing_address_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv(core.ADDRESS_VAR, raising=False)
    with pytest.raises(core.ConfigurationError, match="DERENDER_ADDRESS"):
        core.RewardClient()


def test_scored_metrics_pad_missing_components():
    s = core.Scored(0.5, "syntax_error", {"ssim": 0.1})
    m = s.metrics(["mse", "ssim"])
    assert m["valid"] == 0.0 and m["ssim"] == 0.1 and m["mse"] != m["mse"]  # NaN
