"""Fuzz a live server with >= 10,000 malformed messages; it must answer each with a typed
error (or ZeroMQ must drop it for its size) and still serve a valid step afterwards.

Each hypothesis example is a batch of 20 messages, each also sent in 4 derived forms
(header truncated at a third and two thirds, one byte flipped, header repeated as a
stray binary frame): 100 messages per example, with a fifth of the generation cost. A
DEALER pipelines them; the server answers in order, so each reply is checked against
the message it answers.
"""

from __future__ import annotations

import json

import pytest
import zmq
from derender import Client
from derender.protocol.errors import ERROR_CODES
from derender.protocol.messages import ServerLimits
from derender.scenes import dsl_program
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

BATCH = 20  # generated messages per example; each is sent in VARIANTS forms
VARIANTS = 5
TOTAL = 10_000
TYPES = ["ping", "info", "reset", "step", "step_batch", "render", "", "PING", "fly"]
MEMBERS = [
    "v",
    "id",
    "type",
    "target",
    "script",
    "items",
    "scene",
    "masks",
    "encoding",
    "preset",
    "arrays",
    "seed",
    "index",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.one_of(
    st.text(max_size=140),
    st.integers(),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def mutated_header(draw) -> list[bytes]:
    """A plausible request whose members are replaced by arbitrary JSON."""
    header = {"v": 1, "id": draw(ids), "type": draw(st.sampled_from(TYPES))}
    for key in draw(st.lists(st.sampled_from(MEMBERS), min_size=1, max_size=4, unique=True)):
        header[key] = draw(json_values)
    extra = draw(st.lists(st.binary(max_size=32), max_size=2))
    return [json.dumps(header).encode(), *extra]


messages = st.one_of(
    st.lists(st.binary(max_size=200), min_size=1, max_size=5),  # arbitrary bytes
    json_values.map(lambda v: [json.dumps(v).encode()]),  # valid JSON, wrong shape
    mutated_header(),
    st.binary(max_size=50).map(lambda b: [b"\xff\xfe" + b]),  # not UTF-8
    st.integers(1, 5000).map(lambda n: [b"[" * n + b"]" * n]),  # deep nesting
    st.builds(  # truncated multipart: arrays declared, frames missing or extra
        lambda n, k: [
            json.dumps(
                {
                    "v": 1,
                    "id": "t",
                    "type": "ping",
                    "arrays": [{"shape": [4], "dtype": "uint8", "encoding": "raw"}] * n,
                }
            ).encode(),
            *[b"abcd"] * k,
        ],
        st.integers(0, 3),
        st.integers(0, 3),
    ).filter(lambda frames: len(frames) != 1),
    st.just([json.dumps({"v": 1, "id": "ok", "type": "ping"}).encode()]),  # controls
)


def _variants(frames: list[bytes]) -> list[list[bytes]]:
    head, rest = frames[0], frames[1:]
    flipped = bytearray(head or b"\0")
    flipped[len(flipped) // 2] ^= 0x5A
    return [
        frames,
        [head[: len(head) // 3], *rest],
        [head[: 2 * len(head) // 3], *rest],
        [bytes(flipped), *rest],
        [head, *rest, head],
    ]


def _expected_id(frames: list[bytes]) -> object:
    try:
        header = json.loads(frames[0].decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    rid = header.get("id") if isinstance(header, dict) else None
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        return None
    if isinstance(rid, str) and not 0 < len(rid) <= ServerLimits().max_id_chars:
        return None
    if isinstance(rid, int) and not -(2**63) < rid < 2**63:
        return None
    return rid


def test_ten_thousand_malformed_messages(live_server):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(live_server.tcp)
    seen = {"sent": 0, "errors": 0}

    @settings(
        max_examples=TOTAL // (BATCH * VARIANTS),
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(messages, min_size=BATCH, max_size=BATCH))
    def fuzz(generated):
        batch = [v for frames in generated for v in _variants(frames)]
        for frames in batch:
            sock.send_multipart([b"", *frames])
        for frames in batch:
            assert sock.poll(30_000), f"no reply to {frames!r:.200}"
            reply_frames = sock.recv_multipart()
            assert reply_frames[0] == b""
            reply = json.loads(reply_frames[1])
            assert reply["v"] == 1 and isinstance(reply["ok"], bool)
            if reply["ok"]:
                assert reply["type"] in ("ping", "info"), reply
            else:
                assert reply["error"]["code"] in ERROR_CODES, reply
                assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
                seen["errors"] += 1
            rid = _expected_id(frames)
            if rid is not None:
                assert reply["id"] == rid
        seen["sent"] += len(batch)

    while seen["sent"] < TOTAL:
        fuzz()
    sock.close()
    assert seen["sent"] >= TOTAL and seen["errors"] > 0.7 * seen["sent"]

    with Client(live_server.tcp, timeout=60, retries=0) as client:  # still serving
        target = client.reset(seed=11, index=0)
        assert client.step(dsl_program(target.scene), target).outcome == "ok"
    assert live_server.proc.poll() is None


@pytest.mark.parametrize("size", [ServerLimits().max_frame_bytes + 1])
def test_oversize_frame_is_dropped_by_zeromq(live_server, size):
    ctx = zmq.Context.instance()
    big = ctx.socket(zmq.DEALER)
    big.setsockopt(zmq.LINGER, 0)
    big.connect(live_server.tcp)
    big.send_multipart([b"", b"x" * size])
    assert not big.poll(1000)  # disconnected by ZMQ_MAXMSGSIZE: no reply
    big.close()
    with Client(live_server.tcp, timeout=30, retries=0) as client:
        assert client.ping() < 1.0
