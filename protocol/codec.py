"""Multipart codec: a JSON header frame plus raw (or PNG) array frames. Never pickle.

``encode`` turns a header dict that contains numpy arrays anywhere into ZeroMQ frames:
each array is replaced by ``{"$array": k}`` and described in ``header["arrays"][k]``
(SPEC.md section 3). ``decode`` is its inverse and validates everything it reads, raising
:class:`BadRequest` with a message naming the offending part, because its input comes
from the network.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from .errors import BadRequest

DTYPES: Mapping[str, np.dtype] = {
    "uint8": np.dtype("<u1"),
    "int32": np.dtype("<i4"),
    "float32": np.dtype("<f4"),
}
ENCODINGS: tuple[str, ...] = ("raw", "png")


@dataclass(frozen=True)
class CodecLimits:
    """What ``decode`` accepts; the server's values are stated in SPEC.md section 6."""

    max_header_bytes: int = 1 << 20
    max_frames: int = 16
    max_array_bytes: int = 1 << 28


def _png_mode(arr: np.ndarray) -> str | None:
    if arr.dtype != np.uint8:
        return None
    if arr.ndim == 2:
        return "L"
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return "RGB" if arr.shape[2] == 3 else "RGBA"
    return None


def _encode_array(arr: np.ndarray, encoding: str) -> tuple[dict[str, Any], bytes]:
    name = next((n for n, dt in DTYPES.items() if arr.dtype == dt), None)
    if name is None:
        raise ValueError(f"cannot send an array of dtype {arr.dtype}; allowed: {list(DTYPES)}")
    mode = _png_mode(arr) if encoding == "png" else None
    if mode is not None:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(arr), mode).save(buf, "PNG", compress_level=3)
        data, used = buf.getvalue(), "png"
    else:  # masks and non-image arrays are always raw
        data, used = np.ascontiguousarray(arr, DTYPES[name]).tobytes(), "raw"
    return {"shape": list(arr.shape), "dtype": name, "encoding": used}, data


def encode(header: Mapping[str, Any], encoding: str = "raw") -> list[bytes]:
    """Frames for ``header``: arrays become ``{"$array": k}``, non-finite floats ``null``."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    # A reply with a NaN component (a render-free step's image terms, a missing LPIPS) is
    # written twice; its arrays are encoded (a PNG compressed) once, by identity: the
    # header holds them, so no id is reused meanwhile.
    encoded: dict[int, tuple[dict[str, Any], bytes]] = {}
    text, payloads = _dump(header, encoding, encoded)
    if "NaN" in text or "Infinity" in text:  # a non-finite float (or those words)
        text, payloads = _dump(_finite(header), encoding, encoded)
    return [text.encode("utf-8"), *payloads]


def _dump(
    header: Mapping[str, Any], encoding: str, encoded: dict[int, tuple[dict[str, Any], bytes]]
) -> tuple[str, list[bytes]]:
    """JSON text by the C encoder; ``default`` swaps each array for its reference (its
    frame from ``encoded``, or made and kept there)."""
    descriptors: list[dict[str, Any]] = []
    payloads: list[bytes] = []

    def default(value: Any) -> Any:  # called for what json cannot write itself
        if isinstance(value, np.ndarray):
            if id(value) not in encoded:
                encoded[id(value)] = _encode_array(value, encoding)
            desc, data = encoded[id(value)]
            descriptors.append(desc)
            payloads.append(data)
            return {"$array": len(descriptors) - 1}
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return float(value)
        if isinstance(value, Mapping):
            return dict(value)
        raise TypeError(f"cannot send a {type(value).__name__} on the wire")

    body = {k: v for k, v in header.items() if k != "arrays"}
    body["arrays"] = descriptors  # written last, so every array has been met by then
    return json.dumps(body, separators=(",", ":"), default=default), payloads


def _finite(value: Any) -> Any:
    """A copy with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    return value


def _frame_bytes(frame: Any) -> bytes | memoryview:
    # zmq.Frame (recv with copy=False) exposes .buffer; bytes pass through.
    return frame.buffer if hasattr(frame, "buffer") else frame


def decode_header(data: bytes | memoryview, limits: CodecLimits = CodecLimits()) -> dict:
    """The header frame as a dict; BadRequest if it is not a UTF-8 JSON object."""
    if len(data) > limits.max_header_bytes:
        raise BadRequest(f"header is {len(data)} bytes; the limit is {limits.max_header_bytes}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"header is not UTF-8: {exc}") from exc
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"header is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(header, dict):
        raise BadRequest(f"header must be a JSON object, got {type(header).__name__}")
    return header


def _decode_array(desc: Any, data: bytes | memoryview, k: int, limits: CodecLimits) -> np.ndarray:
    if not isinstance(desc, dict):
        raise BadRequest(f"arrays[{k}] must be an object, got {desc!r:.80}")
    shape, dtype, enc = desc.get("shape"), desc.get("dtype"), desc.get("encoding", "raw")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 4
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise BadRequest(f"arrays[{k}].shape must be 1..4 non-negative ints, got {shape!r:.80}")
    if dtype not in DTYPES:
        raise BadRequest(f"arrays[{k}].dtype must be one of {list(DTYPES)}, got {dtype!r:.40}")
    if enc not in ENCODINGS:
        raise BadRequest(f"arrays[{k}].encoding must be one of {ENCODINGS}, got {enc!r:.40}")
    nbytes = math.prod(shape) * DTYPES[cast(str, dtype)].itemsize
    if nbytes > limits.max_array_bytes:
        raise BadRequest(f"arrays[{k}] would be {nbytes} bytes; limit {limits.max_array_bytes}")
    if enc == "raw":
        if len(data) != nbytes:
            raise BadRequest(f"arrays[{k}] has {len(data)} bytes, shape {shape} needs {nbytes}")
        return np.frombuffer(data, DTYPES[cast(str, dtype)]).reshape(shape).copy()
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(bytes(data))) as img:
            if img.width * img.height * 4 > limits.max_array_bytes:
                raise BadRequest(f"arrays[{k}] PNG is {img.width}x{img.height}: too large")
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadRequest(f"arrays[{k}] is not a readable PNG: {exc}") from exc
    if dtype != "uint8" or list(arr.shape) != shape:
        raise BadRequest(
            f"arrays[{k}] PNG decodes to {arr.dtype}{list(arr.shape)}, header says {dtype}{shape}"
        )
    return arr


def decode(frames: Sequence[Any], limits: CodecLimits = CodecLimits()) -> dict:
    """Header with every ``{"$array": k}`` replaced by its numpy array."""
    if not frames:
        raise BadRequest("empty message: no header frame")
    return attach_arrays(decode_header(_frame_bytes(frames[0]), limits), frames[1:], limits)


def attach_arrays(
    header: dict, payloads: Sequence[Any], limits: CodecLimits = CodecLimits()
) -> dict:
    """Check ``header["arrays"]`` against the binary frames and substitute the arrays.

    Separate from :func:`decode_header` so that a server can read the request id first
    and address its error reply even when the frames are wrong.
    """
    if len(payloads) + 1 > limits.max_frames:
        raise BadRequest(
            f"message has {len(payloads) + 1} frames; the limit is {limits.max_frames}"
        )
    descs = header.pop("arrays", [])
    if not isinstance(descs, list):
        raise BadRequest(f"header.arrays must be a list, got {type(descs).__name__}")
    if len(descs) != len(payloads):
        raise BadRequest(
            f"header declares {len(descs)} arrays but the message has {len(payloads)} binary frames"
        )
    arrays = [
        _decode_array(d, _frame_bytes(f), k, limits)
        for k, (d, f) in enumerate(zip(descs, payloads, strict=True))
    ]
    if not arrays:
        return header

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"$array"}:
                k = value["$array"]
                if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < len(arrays):
                    raise BadRequest(f"reference {{'$array': {k!r:.20}}} names no array")
                return arrays[k]
            # containers only: skipping the call for scalars makes this several times faster
            return {k: walk(v) if isinstance(v, dict | list) else v for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) if isinstance(v, dict | list) else v for v in value]
        return value

    try:
        return walk(header)
    except RecursionError as exc:
        raise BadRequest("header is nested too deeply") from exc
