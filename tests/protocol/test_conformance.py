"""Conformance: a client written from SPEC.md alone, with raw pyzmq, json and numpy.

Nothing from derender's protocol code is imported here: if SPEC.md and the server
disagree, this fails.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import zmq

SPEC_CODES = {
    "bad_request",
    "unsupported_version",
    "unauthorized",
    "overloaded",
    "timeout",
    "worker_lost",
    "unknown_target",
    "render_error",
    "internal",
}
DTYPES = {"uint8": "<u1", "int32": "<i4", "float32": "<f4"}


def call(sock: zmq.Socket, header: dict, delimiter: bool = True) -> tuple[dict, list[bytes]]:
    sock.send_multipart(([b""] if delimiter else []) + [json.dumps(header).encode()])
    assert sock.poll(60_000), f"no reply to {header}"
    frames = sock.recv_multipart()
    if sock.type == zmq.DEALER and delimiter:
        assert frames[0] == b""
        frames = frames[1:]
    return json.loads(frames[0].decode("utf-8")), frames[1:]


def arrays(reply: dict, frames: list[bytes]) -> list[np.ndarray]:
    out = []
    assert len(reply["arrays"]) == len(frames)
    for desc, data in zip(reply["arrays"], frames, strict=True):
        assert desc["encoding"] == "raw"
        dt = np.dtype(DTYPES[desc["dtype"]])
        assert len(data) == int(np.prod(desc["shape"])) * dt.itemsize
        out.append(np.frombuffer(data, dt).reshape(desc["shape"]))
    return out


def ref(reply: dict, member: str, arrs: list[np.ndarray]) -> np.ndarray:
    return arrs[reply[member]["$array"]]


@pytest.fixture
def dealer(live_server):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(live_server.tcp)
    yield sock
    sock.close()


def test_ping_over_req_and_dealer_without_delimiter(live_server, dealer):
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(live_server.ipc)
    reply, frames = call(req, {"v": 1, "id": "r1", "type": "ping"}, delimiter=False)
    req.close()
    assert reply["ok"] is True and reply["id"] == "r1" and reply["type"] == "ping"
    assert reply["v"] == 1 and reply["arrays"] == [] and frames == []
    assert isinstance(reply["time"], float)
    reply, _ = call(dealer, {"v": 1, "id": 42, "type": "ping"}, delimiter=False)
    assert reply["ok"] and reply["id"] == 42


def test_info_members(dealer):
    reply, _ = call(dealer, {"v": 1, "id": "i", "type": "info"})
    assert reply["ok"]
    for member in (
        "server",
        "protocol",
        "frame",
        "frame_hash",
        "engine",
        "universe",
        "reward_presets",
        "default_preset",
        "default_presets",
        "datasets",
        "cheatsheet",
    ):
        assert member in reply, member
    assert reply["default_presets"]["clevr"] == reply["default_preset"]
    assert reply["frame"]["width"] == 64 and reply["engine"] == "workbench"
    assert 1 in reply["protocol"]["versions"]
    limits = reply["protocol"]["limits"]
    assert limits["max_script_chars"] == 65536 and limits["max_batch"] == 256


def test_reset_step_batch_render(dealer):
    reply, frames = call(
        dealer, {"v": 1, "id": "a1", "type": "reset", "target": {"seed": 3, "index": 0}}
    )
    assert reply["ok"], reply
    arrs = arrays(reply, frames)
    image, masks = ref(reply, "image", arrs), ref(reply, "masks", arrs)
    assert image.shape == (64, 64, 3) and masks.shape == (64, 64)
    tid = reply["target_id"]
    assert tid.startswith("t-") and len(tid) == 18
    scene = reply["scene"]
    assert scene["objects"] and all("3d_coords" in o for o in scene["objects"])

    lines = [
        f"add_object(shape={o['shape']!r}, size={o['size']!r}, material={o['material']!r}, "
        f"color={o['color']!r}, x={o['3d_coords'][0]!r}, y={o['3d_coords'][1]!r}, "
        f"rotation={o['rotation']!r})"
        for o in scene["objects"]
    ]
    step, frames = call(
        dealer,
        {
            "v": 1,
            "id": "a2",
            "type": "step",
            "script": "\n".join(lines),
            "target": {"target_id": tid},
            "masks": True,
        },
    )
    assert step["ok"] and step["outcome"] == "ok", step
    arrs = arrays(step, frames)
    assert np.abs(ref(step, "image", arrs).astype(int) - image).mean() < 1.0
    assert ref(step, "masks", arrs).shape == (64, 64)
    for member in (
        "message",
        "line",
        "stdout",
        "reward",
        "components",
        "unavailable",
        "preset",
        "spec_hash",
        "scene",
        "timings",
        "target_id",
        "frame_hash",
    ):
        assert member in step, member
    assert len(step["scene"]["objects"]) == len(scene["objects"])

    batch, frames = call(
        dealer,
        {
            "v": 1,
            "id": "a3",
            "type": "step_batch",
            "items": [
                {"script": "x = (", "target": {"target_id": tid}},
                {"script": "", "target": {"target_id": "t-ffffffffffffffff"}},
            ],
        },
    )
    assert batch["ok"] and len(batch["results"]) == 2
    assert batch["results"][0]["outcome"] == "syntax_error"
    assert batch["results"][1]["error"]["code"] == "unknown_target"

    render, frames = call(
        dealer, {"v": 1, "id": "a4", "type": "render", "scene": scene, "masks": False}
    )
    assert render["ok"] and render["masks"] is None
    np.testing.assert_array_equal(ref(render, "image", arrays(render, frames)), image)


def test_png_encoding(dealer):
    reply, frames = call(
        dealer,
        {"v": 1, "id": "p", "type": "reset", "encoding": "png", "target": {"seed": 3, "index": 0}},
    )
    image_desc = reply["arrays"][reply["image"]["$array"]]
    assert image_desc == {"shape": [64, 64, 3], "dtype": "uint8", "encoding": "png"}
    assert frames[reply["image"]["$array"]][:8] == b"\x89PNG\r\n\x1a\n"
    assert reply["arrays"][reply["masks"]["$array"]]["encoding"] == "raw"


@pytest.mark.parametrize(
    ("frames", "code", "rid"),
    [
        ([b'{"v": 2, "id": "x", "type": "ping"}'], "unsupported_version", "x"),
        ([b'{"v": 1, "id": "x", "type": "fly"}'], "bad_request", "x"),
        (
            [b'{"v": 1, "id": "x", "type": "ping", "arrays": [{"shape": [1], "dtype": "uint8"}]}'],
            "bad_request",
            "x",
        ),  # truncated multipart
        ([b"\xc3\x28"], "bad_request", None),
        ([b"not json"], "bad_request", None),
        (
            [b'{"v": 1, "id": "x", "type": "step", "script": 5, "target": {"seed": 0}}'],
            "bad_request",
            "x",
        ),
        (
            [
                b'{"v": 1, "id": "x", "type": "step", "script": "", '
                b'"target": {"target_id": "t-ffffffffffffffff"}}'
            ],
            "unknown_target",
            "x",
        ),
    ],
)
def test_errors_are_typed_and_echo_the_id(dealer, frames, code, rid):
    dealer.send_multipart([b"", *frames])
    assert dealer.poll(30_000)
    reply = json.loads(dealer.recv_multipart()[1])
    assert reply["ok"] is False and reply["id"] == rid
    assert reply["error"]["code"] == code and reply["error"]["code"] in SPEC_CODES
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
