"""The handler turns every service failure into a typed error reply and keeps going.

Blender is not needed to fail: these services fail the way a broken renderer does, and the
handler's reply is read back with the codec exactly as a client reads it.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from derender.farm.in_process import Handler
from derender.protocol import codec
from derender.protocol.messages import Ping, Reset, SeedTarget
from derender.scenes import FrameSpec

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
