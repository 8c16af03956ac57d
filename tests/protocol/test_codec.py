"""Codec: arrays round-trip raw and PNG; every malformed message is a BadRequest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from derender.protocol import codec
from derender.protocol.errors import BadRequest
from hypothesis import given, settings
from hypothesis import strategies as st


def test_arrays_round_trip_raw_anywhere_in_the_header():
    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    masks = np.arange(20, dtype=np.int32).reshape(4, 5) - 3
    frames = codec.encode({"a": {"image": img}, "list": [masks, 1.5], "n": np.int64(7)})
    assert len(frames) == 3
    header = json.loads(frames[0])
    assert header["a"]["image"] == {"$array": 0}
    assert header["arrays"][1] == {"shape": [4, 5], "dtype": "int32", "encoding": "raw"}
    assert len(frames[2]) == 4 * 5 * 4
    out = codec.decode(frames)
    np.testing.assert_array_equal(out["a"]["image"], img)
    np.testing.assert_array_equal(out["list"][0], masks)
    assert out["list"][1] == 1.5 and out["n"] == 7
    assert out["a"]["image"].flags.writeable


def test_png_applies_to_uint8_images_only_and_is_lossless():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    masks = rng.integers(0, 5, (16, 24), dtype=np.int32)
    frames = codec.encode({"image": img, "masks": masks}, encoding="png")
    descs = json.loads(frames[0])["arrays"]
    assert [d["encoding"] for d in descs] == ["png", "raw"]
    assert frames[1][:8] == b"\x89PNG\r\n\x1a\n"
    out = codec.decode(frames)
    np.testing.assert_array_equal(out["image"], img)
    np.testing.assert_array_equal(out["masks"], masks)


def test_non_finite_floats_travel_as_null():
    frames = codec.encode({"x": float("nan"), "y": [float("inf"), np.float32(2.0)]})
    assert codec.decode(frames) == {"x": None, "y": [None, 2.0]}
    img = np.ones((2, 2, 3), np.uint8)
    frames = codec.encode({"s": "NaN or -Infinity", "f": np.float32("nan"), "i": img})
    out = codec.decode(frames)
    assert out["s"] == "NaN or -Infinity" and out["f"] is None
    np.testing.assert_array_equal(out["i"], img)


def test_a_header_with_a_nan_compresses_each_image_once(monkeypatch):
    calls = []
    real = codec._encode_array
    monkeypatch.setattr(codec, "_encode_array", lambda arr, enc: calls.append(1) or real(arr, enc))
    img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    other = img[::-1].copy()
    frames = codec.encode({"reward": float("nan"), "image": img, "other": other}, encoding="png")
    assert len(calls) == 2  # one per array, not one per pass over the header
    out = codec.decode(frames)
    assert out["reward"] is None
    np.testing.assert_array_equal(out["image"], img)
    np.testing.assert_array_equal(out["other"], other)


def test_unsupported_dtype_is_refused_on_encode():
    with pytest.raises(ValueError, match="float64"):
        codec.encode({"a": np.zeros(3)})


def _hdr(**kw) -> bytes:
    return json.dumps(kw).encode()


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([], "empty message"),
        ([b"\xff\xfe"], "not UTF-8"),
        ([b"{not json"], "not valid JSON"),
        ([b"[1, 2]"], "must be a JSON object"),
        ([b"[" * 100000], "not valid JSON"),
        ([_hdr(arrays=[{"shape": [2], "dtype": "uint8"}])], "declares 1 arrays but"),
        ([_hdr(), b"extra"], "declares 0 arrays but the message has 1"),
        ([_hdr(arrays=[{"shape": [3], "dtype": "uint8"}]), b"ab"], "has 2 bytes"),
        ([_hdr(arrays=[{"shape": [3], "dtype": "float64"}]), b"abc"], "dtype"),
        ([_hdr(arrays=[{"shape": "3", "dtype": "uint8"}]), b"abc"], "shape"),
        ([_hdr(arrays=[{"shape": [1 << 40], "dtype": "uint8"}]), b"a"], "bytes; limit"),
        ([_hdr(arrays=[{"shape": [3], "dtype": "uint8", "encoding": "png"}]), b"abc"], "PNG"),
        ([_hdr(arrays=[{"shape": [3], "dtype": "uint8"}], x={"$array": 5}), b"abc"], "names no"),
        ([_hdr(arrays="no")], "must be a list"),
        ([b"{}"] * 17, "17 frames"),
        ([b" " * (1 << 20) + b"{}"], "limit is"),
    ],
)
def test_malformed_messages_are_bad_requests(frames, match):
    with pytest.raises(BadRequest, match=match):
        codec.decode(frames)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=4))
def test_decode_never_raises_anything_but_bad_request(frames):
    try:
        codec.decode(frames)
    except BadRequest:
        pass
