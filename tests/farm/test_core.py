"""The request core decides in values, and the handler turns every service failure into a
typed error reply and keeps going.

Blender is not needed to fail: these services fail the way a broken renderer does, and the
handler's reply is read back with the codec exactly as a client reads it.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from derender.farm.core import NeedsRender, RequestCore
from derender.farm.in_process import Handler
from derender.protocol import codec
from derender.protocol.errors import BadRequest, UnknownTarget
from derender.protocol.messages import (
    Ping,
    Reset,
    SeedTarget,
    Step,
    StepItem,
    SvgTarget,
    TargetRef,
)
from derender.scenes import FrameSpec, scene_from_clevr

FRAME = FrameSpec(width=16, height=16, engine="workbench")


class _Renderer:
    frame = FRAME

    def __init__(self, image=None, exc: Exception | None = None) -> None:
        self.image, self.exc = image, exc

    def render_scene(self, scene, masks=True):
        if self.exc is not None:
            raise self.exc
        return SimpleNamespace(image=self.image, masks=None, timings={})


def _reply(handler: Handler, req) -> dict:
    return codec.decode(handler.handle_frames(codec.encode(req.to_wire())))


def test_renderer_exception_is_a_render_error():
    handler = Handler(_Renderer(exc=RuntimeError("GPU lost")))
    reply = _reply(handler, Reset("r1", SeedTarget(1)))
    assert reply["ok"] is False and reply["id"] == "r1" and reply["type"] == "reset"
    assert reply["error"]["code"] == "render_error" and "GPU lost" in reply["error"]["message"]
    assert _reply(handler, Ping("p"))["ok"]  # and the handler still answers


def test_unencodable_reply_is_an_internal_error():
    handler = Handler(_Renderer(image=np.zeros((16, 16, 3), np.float64)))  # not a wire dtype
    reply = _reply(handler, Reset("r2", SeedTarget(1)))
    assert reply["error"]["code"] == "internal" and "float64" in reply["error"]["message"]


def test_reset_caches_by_content():
    calls = []

    class Counting(_Renderer):
        def render_scene(self, scene, masks=True):
            calls.append(scene)
            return super().render_scene(scene, masks)

    handler = Handler(Counting(image=np.full((16, 16, 3), 7, np.uint8)))
    first = _reply(handler, Reset("a", SeedTarget(2, 1)))
    second = _reply(handler, Reset("b", SeedTarget(2, 1)))
    assert first["target_id"] == second["target_id"] and len(calls) == 1
    assert second["image"].shape == (16, 16, 3) and second["image"][0, 0, 0] == 7


# -- the sans-IO core: answers are values (a target or the job that makes it) -----------


def _core(envs=("clevr", "svg")) -> RequestCore:
    return RequestCore(FRAME, envs=envs)


def test_resolve_names_the_render_job_then_the_cached_target():
    core = _core()
    needs = core.resolve(SeedTarget(3, 1))
    assert isinstance(needs, NeedsRender) and needs.env == "clevr"
    assert needs.job["kind"] == "render" and needs.job["masks"] is True
    assert scene_from_clevr(needs.job["scene"]) == needs.scene
    image = np.full((16, 16, 3), 5, np.uint8)
    made = core.made(needs, {"image": image, "masks": None})
    assert made.target_id == needs.target_id and made.image[0, 0, 0] == 5
    # the same spec, and a reference to the made target, are now the cached target
    assert core.resolve(SeedTarget(3, 1)) is made
    assert core.resolve(TargetRef(made.target_id)) is made


def test_an_svg_spec_becomes_an_svg_worker_job_never_rendered_by_the_core():
    core = _core()
    doc = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>'
    needs = core.resolve(SvgTarget(doc))
    assert isinstance(needs, NeedsRender) and needs.env == "svg" and needs.svg == doc
    assert needs.job == {"kind": "svg", "script": doc, "masks": True, "elements": True}
    refused = {"outcome": "sandbox_violation", "message": "external entity", "timings": {}}
    with pytest.raises(BadRequest, match="refused"):
        core.made(needs, refused)
    assert needs.target_id not in core.targets


@pytest.mark.parametrize(
    ("envs", "spec", "env", "message"),
    [
        (("clevr",), SeedTarget(1), "svg", "not 'svg'"),
        (("svg",), SeedTarget(1), None, "not 'clevr'"),
        (("clevr", "svg"), SvgTarget("<svg/>"), "clevr", "cannot be a target of env"),
    ],
)
def test_resolve_refuses_an_env_the_server_does_not_serve(envs, spec, env, message):
    with pytest.raises(BadRequest, match=message):
        _core(envs).resolve(spec, env)


def test_resolve_of_an_unknown_target_id_is_a_typed_error():
    with pytest.raises(UnknownTarget):
        _core().resolve(TargetRef("t-nothing"))


def test_a_step_job_carries_the_script_and_its_passes_but_no_target():
    core = _core()
    needs = core.resolve(SeedTarget(4))
    target = core.made(needs, {"image": np.zeros((16, 16, 3), np.uint8), "masks": None})
    item = StepItem("cube()", TargetRef(target.target_id), seed=9)
    passes = core.passes(Step("s", item, preset="scene", render=False), "scene")
    job = core.step_job(item, target, passes, None)
    assert job == {"kind": "step", "script": "cube()", "seed": 9, "masks": False, "render": False}
    assert target.target_id not in repr(job)
    with pytest.raises(BadRequest, match="is a target of env 'clevr', not 'svg'"):
        core.step_job(item, target, passes, "svg")


def test_a_batch_reply_carries_every_items_body_or_error():
    core = _core()
    reply = core.reply("b", "step_batch", [{"reward": 0.5}, UnknownTarget("t-x is gone")])
    assert reply["ok"] is True and reply["results"][0] == {"reward": 0.5}
    assert reply["results"][1]["error"]["code"] == "unknown_target"
    single = core.reply("s", "step", [UnknownTarget("t-x is gone")])
    assert single["ok"] is False and single["error"]["code"] == "unknown_target"


def test_a_step_that_names_no_preset_gets_its_targets_env_default():
    core = _core()
    clevr = core.made(core.resolve(SeedTarget(5)), {"image": np.zeros((16, 16, 3), np.uint8)})
    doc = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>'
    svg = core.made(
        core.resolve(SvgTarget(doc)),
        {"outcome": "ok", "image": np.zeros((64, 64, 3), np.uint8), "masks": None},
    )
    unnamed = Step("s", StepItem("x", TargetRef(clevr.target_id)))
    assert core.step_preset(unnamed, clevr) == "graph_image"
    assert core.step_preset(unnamed, svg) == "seed-svg"
    assert core.step_preset(Step("s", StepItem("x", "t"), preset="rlrf"), svg) == "rlrf"
    assert core.info()["default_presets"] == {"clevr": "graph_image", "svg": "seed-svg"}
