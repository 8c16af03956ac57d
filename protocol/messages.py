"""Typed requests, their validation against the limits, and target specs (SPEC.md 2, 4, 6).

``parse_request`` turns a decoded header (untrusted JSON) into one of the request
dataclasses or raises a typed error naming the offending member; ``Request.to_wire``
is its inverse, used by clients. Results live in :mod:`.results`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..scenes import Scene, scene_from_clevr, scene_to_clevr
from .codec import ENCODINGS, CodecLimits
from .errors import BadRequest, UnsupportedVersion

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
REQUEST_TYPES: tuple[str, ...] = (
    "ping", "info", "reset", "step", "step_batch", "render", "status",
)  # fmt: skip
_MAX_INT = 2**63 - 1
# Environment kinds (SPEC.md 4, added in 0.3): the CLEVR scenes rebuilt in Blender, and
# the SVG round trip. A request without ``env`` means "clevr".
ENVS: tuple[str, ...] = ("clevr", "svg")


@dataclass(frozen=True)
class ServerLimits:
    """The limits of SPEC.md section 6 (the server states them in ``info``)."""

    max_frame_bytes: int = 8 << 20
    max_header_bytes: int = 1 << 20
    max_frames: int = 16
    max_script_chars: int = 65536
    max_batch: int = 256
    max_objects: int = 64
    max_id_chars: int = 128
    max_target_id_chars: int = 64
    max_dataset_chars: int = 256
    max_preset_chars: int = 64
    max_pending: int = 1024
    max_targets: int = 1024

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def codec(self) -> CodecLimits:
        return CodecLimits(max_header_bytes=self.max_header_bytes, max_frames=self.max_frames)


# -- target specs ---------------------------------------------------------------------
@dataclass(frozen=True)
class SeedTarget:
    """Scene ``index`` of the generator stream ``seed``."""

    seed: int
    index: int = 0


@dataclass(frozen=True)
class SceneTarget:
    scene: Scene


@dataclass(frozen=True)
class DatasetTarget:
    dataset: str
    index: int = 0


@dataclass(frozen=True)
class SvgTarget:
    """An SVG document as the target (env "svg"): the client's own composition."""

    svg: str


@dataclass(frozen=True)
class TargetRef:
    """A target the server already made (by ``reset``)."""

    target_id: str


TargetSpec = SeedTarget | SceneTarget | DatasetTarget | SvgTarget | TargetRef


def target_to_wire(spec: TargetSpec | str) -> dict[str, Any]:
    """A target spec as JSON; a bare string is a target id."""
    if isinstance(spec, str):
        return {"target_id": spec}
    if isinstance(spec, SceneTarget):
        return {"scene": scene_to_clevr(spec.scene)}
    if isinstance(spec, SeedTarget | DatasetTarget | SvgTarget | TargetRef):
        return asdict(spec)
    raise TypeError(f"not a target spec: {spec!r:.80}")


# -- validation helpers ---------------------------------------------------------------
def _int(obj: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise BadRequest(f"{where}.{key} must be an integer in 0..2**63-1, got {value!r:.40}")
    return value


def _bool(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false, got {value!r:.40}")
    return value


def _str(obj: Mapping[str, Any], key: str, where: str, max_len: int) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise BadRequest(
            f"{where}.{key} must be a string of 1..{max_len} characters, got {value!r:.60}"
        )
    return value


def parse_scene(data: Any, where: str, limits: ServerLimits) -> Scene:
    """A CLEVR scene object from the wire; BadRequest names what is wrong."""
    if not isinstance(data, dict):
        raise BadRequest(f"{where} must be a CLEVR scene object, got {type(data).__name__}")
    objects = data.get("objects")
    if isinstance(objects, list) and len(objects) > limits.max_objects:
        raise BadRequest(f"{where} has {len(objects)} objects; the limit is {limits.max_objects}")
    try:
        return scene_from_clevr(data)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise BadRequest(f"{where} is not a valid CLEVR scene: {exc}") from exc


def parse_target(data: Any, where: str, limits: ServerLimits, allow_ref: bool = True) -> TargetSpec:
    if not isinstance(data, dict):
        raise BadRequest(f"{where} must be a target spec object, got {type(data).__name__}")
    kinds = [k for k in ("seed", "scene", "dataset", "svg", "target_id") if k in data]
    if len(kinds) != 1:
        raise BadRequest(
            f"{where} must have exactly one of seed, scene, dataset, svg, target_id; "
            f"got {sorted(data)[:8]}"
        )
    kind = kinds[0]
    if kind == "seed":
        return SeedTarget(_int(data, "seed", where), _int(data, "index", where, 0))
    if kind == "scene":
        return SceneTarget(parse_scene(data["scene"], f"{where}.scene", limits))
    if kind == "dataset":
        return DatasetTarget(
            _str(data, "dataset", where, limits.max_dataset_chars), _int(data, "index", where, 0)
        )
    if kind == "svg":
        return SvgTarget(_str(data, "svg", where, limits.max_script_chars))
    if not allow_ref:
        raise BadRequest(f"{where}: reset makes a target; it cannot take a target_id")
    return TargetRef(_str(data, "target_id", where, limits.max_target_id_chars))


# -- requests -------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """Common members; ``type`` is the wire name of the subclass."""

    id: str | int

    type = "ping"

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": self.id, "type": self.type}
        body.update(self._members())
        return body

    def _members(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Ping(Request):
    type = "ping"


@dataclass(frozen=True)
class Info(Request):
    type = "info"


@dataclass(frozen=True)
class Status(Request):
    """A farm's workers, queue, rates and latencies (SPEC.md section 4, ``status``)."""

    type = "status"


@dataclass(frozen=True)
class Reset(Request):
    type = "reset"
    target: TargetSpec = SeedTarget(0)
    masks: bool = True
    encoding: str = "raw"
    env: str | None = None  # None: "clevr" (an SvgTarget is "svg" either way)

    def _members(self) -> dict[str, Any]:
        body = {"target": target_to_wire(self.target), "masks": self.masks}
        return {**body, "encoding": self.encoding, **_env(self.env)}


@dataclass(frozen=True)
class StepItem:
    script: str
    target: TargetSpec | str  # a str is a target id
    seed: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {"script": self.script, "target": target_to_wire(self.target), "seed": self.seed}


@dataclass(frozen=True)
class Step(Request):
    type = "step"
    item: StepItem = StepItem("", TargetRef("t-0"))
    preset: str | None = None
    masks: bool = False
    encoding: str = "raw"
    render: bool = True  # False: no image; the reward comes from the read-back scene
    env: str | None = None  # for a seed target spec; a target id carries its own

    def _members(self) -> dict[str, Any]:
        options = _options(self.preset, self.masks, self.encoding, self.render)
        return {**self.item.to_wire(), **options, **_env(self.env)}


@dataclass(frozen=True)
class StepBatch(Request):
    type = "step_batch"
    items: tuple[StepItem, ...] = field(default_factory=tuple)
    preset: str | None = None
    masks: bool = False
    encoding: str = "raw"
    render: bool = True
    env: str | None = None

    def _members(self) -> dict[str, Any]:
        return {
            "items": [i.to_wire() for i in self.items],
            **_options(self.preset, self.masks, self.encoding, self.render),
            **_env(self.env),
        }


@dataclass(frozen=True)
class Render(Request):
    type = "render"
    scene: Scene = field(default_factory=lambda: Scene(()))
    masks: bool = True
    encoding: str = "raw"

    def _members(self) -> dict[str, Any]:
        return {"scene": scene_to_clevr(self.scene), "masks": self.masks, "encoding": self.encoding}


def _options(preset: str | None, masks: bool, encoding: str, render: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"masks": masks, "encoding": encoding}
    if preset is not None:
        out["preset"] = preset
    if not render:  # sent only when false: a version-1 server without it renders anyway
        out["render"] = False
    return out


def _env(env: str | None) -> dict[str, Any]:
    return {} if env is None else {"env": env}  # absent for clevr: older servers are unaffected


def parse_env(header: Mapping[str, Any]) -> str | None:
    """The request's ``env`` (None when absent); BadRequest names an unknown one."""
    env = header.get("env")
    if env is not None and env not in ENVS:
        raise BadRequest(f"env must be one of {ENVS}, got {env!r:.40}")
    return env


def request_id(header: Mapping[str, Any], limits: ServerLimits) -> str | int | None:
    """The header's id if it is a valid one (used to address error replies), else None."""
    rid = header.get("id")
    if isinstance(rid, bool):
        return None
    if isinstance(rid, int) and abs(rid) <= _MAX_INT:  # 64-bit, as other languages hold it
        return rid
    if isinstance(rid, str) and 0 < len(rid) <= limits.max_id_chars:
        return rid
    return None


def _item(data: Any, where: str, limits: ServerLimits) -> StepItem:
    if not isinstance(data, dict):
        raise BadRequest(f"{where} must be an object, got {type(data).__name__}")
    script = data.get("script")
    if not isinstance(script, str):
        raise BadRequest(f"{where}.script must be a string, got {type(script).__name__}")
    if len(script) > limits.max_script_chars:
        raise BadRequest(
            f"{where}.script has {len(script)} characters; the limit is {limits.max_script_chars}"
        )
    target = parse_target(data.get("target"), f"{where}.target", limits)
    return StepItem(script, target, _int(data, "seed", where, 0))


def parse_request(header: Mapping[str, Any], limits: ServerLimits = ServerLimits()) -> Request:
    """The typed request for a decoded header; BadRequest/UnsupportedVersion otherwise."""
    version = header.get("v")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise UnsupportedVersion(
            f"protocol version {version!r:.40} is not supported; "
            f"this server speaks {list(SUPPORTED_VERSIONS)}"
        )
    rid = request_id(header, limits)
    if rid is None:
        raise BadRequest(
            f"id must be a string of 1..{limits.max_id_chars} characters or an "
            f"integer, got {header.get('id')!r:.60}"
        )
    kind = header.get("type")
    if kind not in REQUEST_TYPES:
        raise BadRequest(f"type must be one of {REQUEST_TYPES}, got {kind!r:.40}")
    if kind == "ping":
        return Ping(rid)
    if kind == "info":
        return Info(rid)
    if kind == "status":
        return Status(rid)
    encoding = header.get("encoding", "raw")
    if encoding not in ENCODINGS:
        raise BadRequest(f"encoding must be one of {ENCODINGS}, got {encoding!r:.40}")
    if kind == "reset":
        target = parse_target(header.get("target"), "target", limits, allow_ref=False)
        return Reset(rid, target, _bool(header, "masks", True), encoding, parse_env(header))
    if kind == "render":
        scene = parse_scene(header.get("scene"), "scene", limits)
        return Render(rid, scene, _bool(header, "masks", True), encoding)
    preset = header.get("preset")
    if preset is not None and (
        not isinstance(preset, str) or not 0 < len(preset) <= limits.max_preset_chars
    ):
        raise BadRequest(
            f"preset must be a name of 1..{limits.max_preset_chars} characters, got {preset!r:.40}"
        )
    masks = _bool(header, "masks", False)
    render = _bool(header, "render", True)
    env = parse_env(header)
    if kind == "step":
        return Step(rid, _item(header, "step", limits), preset, masks, encoding, render, env)
    items = header.get("items")
    if not isinstance(items, list) or not 0 < len(items) <= limits.max_batch:
        count = len(items) if isinstance(items, list) else type(items).__name__
        raise BadRequest(f"items must be a list of 1..{limits.max_batch} steps, got {count}")
    parsed = tuple(_item(it, f"items[{i}]", limits) for i, it in enumerate(items))
    return StepBatch(rid, parsed, preset, masks, encoding, render, env)
