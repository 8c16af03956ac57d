"""One request in, one reply out: the transport-independent core of a derender server.

``Handler.handle_frames`` takes the frames after the routing envelope and returns the
reply frames. It never raises for bad input: every failure becomes a typed error reply
(SPEC.md section 5). It drives any object with the ``addon.service.Service`` interface
(``frame``, ``render_scene``, ``step``) and scores steps in-process with
:mod:`derender.reward`; it imports neither bpy nor zmq, so it is tested and reused
outside Blender.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .. import __version__
from ..protocol import codec
from ..protocol.errors import BadRequest, InternalError, ProtocolError, RenderError
from ..protocol.messages import (
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    DatasetTarget,
    Info,
    Ping,
    Render,
    Request,
    Reset,
    SceneTarget,
    SeedTarget,
    ServerLimits,
    Step,
    StepBatch,
    StepItem,
    SvgTarget,
    TargetRef,
    TargetSpec,
    parse_request,
    request_id,
)
from ..protocol.results import ScriptRun
from ..protocol.targets import Target, TargetCache, target_id
from ..reward.spec import DEFAULT_PRESET
from ..scenes import (
    GenerationError,
    GeneratorConfig,
    Scene,
    generate_scene,
    scene_to_clevr,
)
from ..scenes import universe as universe_mod
from ..scenes.cheatsheet import cheatsheet
from .scoring import FinishedStep, score_steps

log = logging.getLogger(__name__)


class ServiceLike(Protocol):
    """What the handler needs from ``addon.service.Service``."""

    frame: Any

    def render_scene(self, scene: Scene, masks: bool = True) -> Any: ...

    def step(self, script: str, seed: int = 0, masks: bool = True) -> ScriptRun: ...


def error_reply(rid: object, kind: str, exc: ProtocolError) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": rid, "type": kind, "ok": False, "error": exc.to_dict()}


@dataclass
class Incoming:
    """A request's frames, decoded as far as they go: what the reply must echo (id, type,
    encoding) is read first, so even a request whose arrays are broken gets its id back."""

    rid: object = None
    kind: str = "error"
    encoding: str = "raw"
    header: dict[str, Any] | None = None  # with its arrays attached; None on error
    error: ProtocolError | None = None


def decode_request(frames: Sequence[Any], limits: ServerLimits) -> Incoming:
    """Decode the frames after the routing envelope (header first); never raises."""
    incoming = Incoming()
    codec_limits = limits.codec()
    try:
        if not frames:
            raise BadRequest("empty message: no header frame")
        header = codec.decode_header(frames[0], codec_limits)
        incoming.rid = request_id(header, limits)
        if isinstance(header.get("type"), str) and len(header["type"]) <= 32:
            incoming.kind = header["type"]
        if header.get("encoding") in codec.ENCODINGS:
            incoming.encoding = header["encoding"]
        incoming.header = codec.attach_arrays(header, frames[1:], codec_limits)
    except ProtocolError as exc:
        incoming.error = exc
    return incoming


class Handler:
    """Dispatches requests to a service, keeps the target cache, scores steps."""

    def __init__(
        self,
        service: ServiceLike,
        limits: ServerLimits | None = None,
        datasets: Mapping[str, Sequence[Scene]] | None = None,
        default_preset: str = DEFAULT_PRESET,
        envs: Sequence[str] = ("clevr",),
        canvas: Any = None,
        svg_deadline: float = 1.0,
    ) -> None:
        """``envs``: the environment kinds served (their steps have workers); ``canvas``:
        the SVG environment's frame (:class:`derender.svg.SvgCanvas`), default 64 px."""
        from .. import reward

        self.service = service
        self.limits = limits or ServerLimits()
        self.datasets = {k: list(v) for k, v in (datasets or {}).items()}
        self.targets = TargetCache(self.limits.max_targets)
        self._reward = reward
        self.presets = tuple(reward.PRESETS)
        if default_preset not in self.presets:
            raise ValueError(f"default_preset {default_preset!r} is not one of {self.presets}")
        self.default_preset = default_preset
        self.frame_hash: str = service.frame.hash()
        self._generator = GeneratorConfig(frame=service.frame)
        self.envs = tuple(envs)
        self._canvas = canvas
        self._svg_deadline = svg_deadline

    # -- entry points -------------------------------------------------------------
    def handle_frames(self, frames: Sequence[Any]) -> list[bytes]:
        """Reply frames for request frames (header first); never raises on bad input."""
        incoming = decode_request(frames, self.limits)
        rid, kind, encoding = incoming.rid, incoming.kind, incoming.encoding
        try:
            if incoming.error is not None:
                raise incoming.error
            assert incoming.header is not None
            reply = self.handle(parse_request(incoming.header, self.limits))
        except ProtocolError as exc:
            reply = error_reply(rid, kind, exc)
        except Exception as exc:  # a bug must not stop the loop; the client learns what
            log.exception("internal error handling request %r", rid)
            reply = error_reply(rid, kind, InternalError(f"{type(exc).__name__}: {exc}"))
        try:
            return codec.encode(reply, encoding)
        except (ValueError, TypeError) as exc:  # a reply member the wire cannot carry: a bug
            log.exception("cannot encode the reply to request %r", rid)
            return codec.encode(error_reply(rid, kind, InternalError(f"unencodable reply: {exc}")))

    def handle(self, req: Request) -> dict[str, Any]:
        """The reply header (arrays inline) for a parsed request."""
        body: dict[str, Any]
        if isinstance(req, Ping):
            body = {"time": time.time()}
        elif isinstance(req, Info):
            body = self.info()
        elif isinstance(req, Reset):
            if self.env_of(req.target, req.env) == "svg":
                target = self.svg_target(req.target)
            else:
                target = self.resolve(req.target)
            body = self.target_body(target, req.masks)
        elif isinstance(req, Step):
            body = self.step(req.item, req.preset, req.masks)
        elif isinstance(req, StepBatch):
            body = {"results": self.step_batch(req.items, req.preset, req.masks)}
        elif isinstance(req, Render):
            body = self.render(req.scene, req.masks)
        else:  # parse_request only makes the types above and Status
            raise BadRequest(f"{req.type!r} requests are answered by a farm, not this server")
        return {"v": PROTOCOL_VERSION, "id": req.id, "type": req.type, "ok": True, **body}

    # -- requests -----------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        frame = self.service.frame
        sheets = {"clevr": cheatsheet()}
        if "svg" in self.envs:
            from ..svg.cheatsheet import svg_cheatsheet

            sheets["svg"] = svg_cheatsheet(self.canvas)
        return {
            "server": {"name": "derender", "version": __version__},
            "protocol": {"versions": list(SUPPORTED_VERSIONS), "limits": self.limits.to_dict()},
            "frame": frame.to_dict(),
            "frame_hash": self.frame_hash,
            "engine": frame.engine,
            "universe": universe_mod.describe(),
            "reward_presets": list(self.presets),
            "default_preset": self.default_preset,
            "datasets": {k: len(v) for k, v in self.datasets.items()},
            "cheatsheet": sheets["clevr"],
            # added in 0.3 (SPEC.md 4): the kinds served, each one's cheat sheet, the canvas
            "envs": list(self.envs),
            "cheatsheets": sheets,
            **({"canvas": self.canvas.to_dict()} if "svg" in self.envs else {}),
        }

    @property
    def canvas(self) -> Any:
        """The SVG canvas (made on first use: importing derender.svg is not free)."""
        if self._canvas is None:
            from ..svg.canvas import SvgCanvas

            self._canvas = SvgCanvas()
        return self._canvas

    def env_of(self, spec: TargetSpec | str, env: str | None) -> str:
        """The environment kind of a target spec under a request's ``env``."""
        if isinstance(spec, SvgTarget):
            if env not in (None, "svg"):
                raise BadRequest(f"an svg target spec cannot be a target of env {env!r}")
            return "svg"
        return env or "clevr"

    def svg_source(self, spec: TargetSpec) -> tuple[str, str]:
        """(document, target id) of the SVG target a seed or svg spec names; BadRequest if
        it names none. A client's document is as untrusted as an agent's: it is rendered
        where agent SVG is (a sandboxed SVG worker on a farm), never in the broker."""
        from ..protocol.targets import svg_target_id
        from ..svg import SvgGeneratorConfig, generate
        from ..svg.generator import SvgGenerationError

        if isinstance(spec, SvgTarget):
            text = spec.svg
        elif isinstance(spec, SeedTarget):
            try:
                text = generate(spec.seed, spec.index, SvgGeneratorConfig(self.canvas)).to_svg()
            except SvgGenerationError as exc:
                raise BadRequest(str(exc)) from exc
        else:
            raise BadRequest(f"env 'svg' takes a seed or an svg target spec, not {spec!r:.60}")
        return text, svg_target_id(text, self.canvas.hash())

    def svg_target_from(self, tid: str, text: str, run: ScriptRun) -> Target:
        """The target a rendered document makes; BadRequest if the policy refused it."""
        if run.outcome != "ok" or run.image is None:
            raise BadRequest(f"the target SVG was refused ({run.outcome}): {run.message}")
        elements = tuple(run.elements or ())
        target = Target(
            tid, Scene(()), run.image, run.masks, self.canvas.hash(), "svg", text, elements
        )
        return self.targets.put(target)

    def svg_target(self, spec: TargetSpec) -> Target:
        """The SVG target of ``spec`` rendered in this process (the in-process path only)."""
        from ..svg.policy import SvgLimits
        from ..svg.render import render

        text, tid = self.svg_source(spec)
        if tid in self.targets:
            return self.targets.get(tid)
        made = render(text, self.canvas, SvgLimits(deadline_s=self._svg_deadline))
        run = ScriptRun(made.outcome, made.message, image=made.image, masks=made.masks,
                        elements=list(made.elements or ()))  # fmt: skip
        return self.svg_target_from(tid, text, run)

    def resolve(self, spec: TargetSpec | str) -> Target:
        """The target for a spec (a str is a target id), from the cache or rendered now."""
        if isinstance(spec, str):
            return self.targets.get(spec)
        if isinstance(spec, TargetRef):
            return self.targets.get(spec.target_id)
        scene = self.scene_for(spec)
        tid = target_id(scene, self.frame_hash)
        if tid in self.targets:
            return self.targets.get(tid)
        result = self._render(scene, masks=True)
        return self.targets.put(Target(tid, scene, result.image, result.masks, self.frame_hash))

    def step(self, item: StepItem, preset: str | None, masks: bool) -> dict[str, Any]:
        return self.step_batch([item], preset, masks, item_errors=False)[0]

    def step_batch(
        self,
        items: Sequence[StepItem],
        preset: str | None,
        masks: bool,
        item_errors: bool = True,
    ) -> list[dict[str, Any]]:
        """Run every script, then score all of them in one batched reward call.

        An item that cannot run (e.g. an unknown target id) gets an ``error`` entry instead
        of sinking the batch; with ``item_errors=False`` (a ``step``) the error is raised.
        """
        name = preset or self.default_preset
        spec = self.reward_spec(name)
        runs: list[FinishedStep | ProtocolError] = []
        for item in items:
            try:
                target = self.resolve(item.target)
                if target.env != "clevr":
                    raise BadRequest(
                        "this server runs bpy scripts only: svg steps run on a farm's SVG "
                        "workers (derender farm --svg-workers N)"
                    )
                t0 = time.perf_counter()
                res = self.service.step(item.script, seed=item.seed, masks=True)
                service_s = time.perf_counter() - t0
            except ProtocolError as exc:
                if not item_errors:
                    raise
                runs.append(exc)
                continue
            run = replace(res, timings={**res.timings, "service": service_s})
            runs.append(FinishedStep(item.script, target, run, send_masks=masks))
        done = iter(
            score_steps(
                [r for r in runs if isinstance(r, FinishedStep)], spec, name, self.service.frame
            )
        )
        return [
            {"error": r.to_dict()} if isinstance(r, ProtocolError) else next(done) for r in runs
        ]

    def render(self, scene: Scene, masks: bool) -> dict[str, Any]:
        result = self._render(scene, masks)
        return {
            "image": result.image,
            "masks": result.masks if masks else None,
            "timings": dict(result.timings),
            "frame_hash": self.frame_hash,
        }

    # -- helpers ------------------------------------------------------------------
    def reward_spec(self, name: str) -> Any:
        """The reward spec of a preset; BadRequest names an unknown one."""
        if name not in self.presets:
            raise BadRequest(f"reward preset {name!r} is not one of {list(self.presets)}")
        return self._reward.preset(name)

    def scene_for(self, spec: TargetSpec) -> Scene:
        """The scene a seed, scene or dataset target spec names; BadRequest if none."""
        if isinstance(spec, SceneTarget):
            return spec.scene
        if isinstance(spec, SeedTarget):
            try:
                return generate_scene(spec.seed, spec.index, self._generator)
            except GenerationError as exc:
                raise BadRequest(str(exc)) from exc
        assert isinstance(spec, DatasetTarget)
        scenes = self.datasets.get(spec.dataset)
        if scenes is None:
            raise BadRequest(
                f"dataset {spec.dataset!r} is not loaded; this server has {sorted(self.datasets)}"
            )
        if spec.index >= len(scenes):
            raise BadRequest(
                f"dataset {spec.dataset!r} has {len(scenes)} scenes; "
                f"index {spec.index} is out of range"
            )
        return scenes[spec.index]

    def _render(self, scene: Scene, masks: bool) -> Any:
        try:
            return self.service.render_scene(scene, masks=masks)
        except ProtocolError:
            raise
        except Exception as exc:  # Blender failures arrive as assorted exception types
            raise RenderError(f"rendering the scene failed: {type(exc).__name__}: {exc}") from exc

    def target_body(self, target: Target, masks: bool) -> dict[str, Any]:
        """The reply members of ``reset`` for a made target (SPEC.md section 4)."""
        if target.env == "svg":
            return {
                "target_id": target.target_id,
                "frame_hash": target.frame_hash,
                "frame": self.canvas.to_dict(),
                "env": "svg",
                "svg": target.svg,
                "scene": None,
                "image": target.image,
                "masks": target.masks if masks else None,
            }
        return {
            "target_id": target.target_id,
            "frame_hash": target.frame_hash,
            "frame": self.service.frame.to_dict(),
            "scene": scene_to_clevr(target.scene, self.service.frame),
            "image": target.image,
            "masks": target.masks if masks else None,
        }
