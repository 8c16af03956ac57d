"""Requests round-trip through the wire form; invalid members name themselves."""

from __future__ import annotations

import pytest
from derender.protocol.errors import BadRequest, UnsupportedVersion
from derender.protocol.messages import (
    DatasetTarget,
    Info,
    Ping,
    Render,
    Reset,
    SceneTarget,
    SeedTarget,
    ServerLimits,
    Step,
    StepBatch,
    StepItem,
    TargetRef,
    parse_request,
)
from derender.scenes import generate_scene, scene_to_clevr

SCENE = generate_scene(1, 0)


@pytest.mark.parametrize(
    "req",
    [
        Ping("p"),
        Info(7),
        Reset("r", SeedTarget(3, 2), masks=False, encoding="png"),
        Reset("r", SceneTarget(SCENE)),
        Reset("r", DatasetTarget("val", 4)),
        Step("s", StepItem("add_object()", TargetRef("t-abc"), seed=5), preset="rlrf"),
        StepBatch("b", (StepItem("a", SeedTarget(1)), StepItem("b", TargetRef("t-x"))), None, True),
        Render("x", SCENE, masks=False),
    ],
)
def test_requests_round_trip(req):
    parsed = parse_request(req.to_wire())
    if isinstance(req, Reset) and isinstance(req.target, SceneTarget):
        # the scene comes back with the CLEVR fields the wire form adds; objects are equal
        assert parsed.target.scene.objects == SCENE.objects
    elif isinstance(req, Render):
        assert parsed.scene.objects == SCENE.objects and parsed.masks is False
    else:
        assert parsed == req


def test_step_target_given_as_plain_id_string():
    wire = Step("s", StepItem("x = 1", "t-123")).to_wire()
    assert wire["target"] == {"target_id": "t-123"}
    assert parse_request(wire).item.target == TargetRef("t-123")


def _wire(**kw):
    return {"v": 1, "id": "q", **kw}


@pytest.mark.parametrize(
    ("header", "error", "match"),
    [
        ({"id": "q", "type": "ping"}, UnsupportedVersion, "None"),
        ({"v": 2, "id": "q", "type": "ping"}, UnsupportedVersion, "speaks \\[1\\]"),
        ({"v": True, "id": "q", "type": "ping"}, UnsupportedVersion, "True"),
        ({"v": 1, "type": "ping"}, BadRequest, "id must be"),
        (_wire(id="x" * 129, type="ping"), BadRequest, "id must be"),
        (_wire(id=[1], type="ping"), BadRequest, "id must be"),
        (_wire(type="explode"), BadRequest, "type must be one of"),
        (_wire(type="reset"), BadRequest, "target must be a target spec"),
        (_wire(type="reset", target={"seed": -1}), BadRequest, "target.seed"),
        (_wire(type="reset", target={"seed": 1, "scene": {}}), BadRequest, "exactly one"),
        (_wire(type="reset", target={"target_id": "t-1"}), BadRequest, "cannot take"),
        (_wire(type="reset", target={"scene": {"objects": 3}}), BadRequest, "objects"),
        (
            _wire(type="reset", target={"scene": {"objects": [{"shape": "cone"}]}}),
            BadRequest,
            "lacks field",
        ),
        (_wire(type="reset", target={"seed": 1}, masks="yes"), BadRequest, "masks"),
        (_wire(type="reset", target={"seed": 1}, encoding="jpeg"), BadRequest, "encoding"),
        (_wire(type="step", target={"seed": 1}), BadRequest, "step.script must be a string"),
        (
            _wire(type="step", script="x" * 65537, target={"seed": 1}),
            BadRequest,
            "65537 characters",
        ),
        (_wire(type="step", script="", target={"seed": 1}, preset=3), BadRequest, "preset"),
        (_wire(type="step_batch", items=[]), BadRequest, "1..256"),
        (
            _wire(type="step_batch", items=[{"script": "", "target": {"seed": 1}}] * 257),
            BadRequest,
            "1..256",
        ),
        (
            _wire(type="step_batch", items=[{"script": "", "target": {"seed": 1}}, 5]),
            BadRequest,
            "items\\[1\\] must be an object",
        ),
        (
            _wire(type="render", scene={"objects": [scene_to_clevr(SCENE)["objects"][0]] * 65}),
            BadRequest,
            "65 objects",
        ),
    ],
)
def test_invalid_requests_raise_typed_errors(header, error, match):
    with pytest.raises(error, match=match):
        parse_request(header, ServerLimits())


def test_limits_are_configurable():
    with pytest.raises(BadRequest, match="10 characters"):
        parse_request(
            _wire(type="step", script="x" * 10, target={"seed": 1}),
            ServerLimits(max_script_chars=9),
        )


def test_each_error_code_has_its_class_and_survives_the_wire():
    from derender.protocol.errors import ERROR_CODES, ERROR_TYPES, InternalError, error_from_wire

    for code in ERROR_CODES:
        original = ERROR_TYPES[code](f"a {code}")
        back = error_from_wire(original.to_dict(), request_id="r1")
        assert type(back) is type(original) and back.code == code
        assert back.message == f"a {code}" and back.request_id == "r1"
    newer = error_from_wire({"code": "rate_limited", "message": "slow down"})
    assert isinstance(newer, InternalError) and newer.code == "rate_limited"


def test_every_server_limit_is_in_the_spec_and_the_name_limits_hold() -> None:
    from dataclasses import fields
    from pathlib import Path

    import derender.protocol

    spec = (Path(derender.protocol.__file__).parent / "SPEC.md").read_text()
    for f in fields(ServerLimits):
        assert f"| `{f.name}` |" in spec, f.name
    small = ServerLimits(max_target_id_chars=4, max_dataset_chars=4, max_preset_chars=4)
    step = {"type": "step", "script": "x = 1"}
    with pytest.raises(BadRequest, match="target_id"):
        parse_request(_wire(**step, target={"target_id": "abcde"}), small)
    with pytest.raises(BadRequest, match="dataset"):
        parse_request(_wire(**step, target={"dataset": "abcde", "index": 0}), small)
    with pytest.raises(BadRequest, match=r"1\.\.4 characters"):
        parse_request(_wire(**step, target={"seed": 1}, preset="abcde"), small)
    assert parse_request(_wire(**step, target={"target_id": "abcd"}, preset="seed"), small)
