"""The request core of a derender server, without I/O: decode, validate, plan, answer.

:func:`decode_request` turns a request's frames into a header (never raising), and
:class:`RequestCore` holds what every server decides the same way: ``info``, the reward
presets, what a target spec names, the target cache, the jobs a worker runs and every
reply. Its answers are values, never callbacks or sends:

- :meth:`RequestCore.resolve` returns a cached :class:`Target`, or a :class:`NeedsRender`
  (the job that renders it); :meth:`RequestCore.made` turns that job's result into the
  target;
- :meth:`RequestCore.step_job` is a step's worker job, :meth:`RequestCore.passes` what it
  runs besides the script;
- :meth:`RequestCore.reply` is the reply to a request from its per-item results.

The farm's broker drives it between its sockets and its workers; the panel's in-process
path (:mod:`.in_process`) drives it with a Service. It imports neither bpy nor zmq.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..protocol import codec
from ..protocol.errors import BadRequest, ProtocolError
from ..protocol.messages import (
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    DatasetTarget,
    Info,
    Ping,
    SceneTarget,
    SeedTarget,
    ServerLimits,
    Step,
    StepBatch,
    StepItem,
    SvgTarget,
    TargetRef,
    TargetSpec,
    request_id,
)
from ..protocol.results import ScriptRun
from ..protocol.targets import Target, TargetCache, target_id
from ..reward.spec import DEFAULT_PRESET, SVG_DEFAULT_PRESET
from ..scenes import (
    FrameSpec,
    GenerationError,
    GeneratorConfig,
    Scene,
    generate_scene,
    scene_to_clevr,
)
from ..scenes import universe as universe_mod
from ..scenes.cheatsheet import cheatsheet

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class NeedsRender:
    """A target that is not made yet: the worker job that renders it (a scene on a target
    worker, an SVG document on an SVG worker) and the id it will have. Pass the job's
    result to :meth:`RequestCore.made`."""

    target_id: str
    job: dict[str, Any]  # the worker job body (``kind`` ``render`` or ``svg``)
    scene: Scene | None = None  # a CLEVR target's scene
    svg: str | None = None  # an SVG target's document

    @property
    def env(self) -> str:
        return "svg" if self.svg is not None else "clevr"


Resolved = Target | NeedsRender

# One request's per-item results: a reply body, or the error that item gets.
ItemResult = dict[str, Any] | ProtocolError


@dataclass(frozen=True)
class Passes:
    """What a step's worker runs besides the script."""

    render: bool  # the image
    masks: bool  # the instance masks (a second, flat render)
    elements: bool  # an SVG run's shape descriptors (the element-level score)

    @classmethod
    def of(cls, spec: Any, render: bool = True, masks: bool = False) -> Passes:
        """What a worker runs for a step scored by the reward spec ``spec``, with a
        request's ``render`` and ``masks``: a render (and the masks pass, a render too)
        only where someone uses it; a scene-graph preset, or ``render: false``, needs no
        pixels. BadRequest for render: false with a preset that needs pixels."""
        if not render and not spec.scores_without_pixels:
            raise BadRequest(
                f"render: false with preset {spec.preset!r} would score validity alone: "
                "its terms need the image; use a preset with a scene-graph term"
            )
        render = render and (spec.needs_pixels or masks)
        return cls(
            render=render,
            masks=render and (masks or "iou" in spec.weights),
            elements="svg_elements" in spec.weights,
        )


class RequestCore:
    """What a server decides about a request, whichever way it then runs it."""

    def __init__(
        self,
        frame: FrameSpec,
        limits: ServerLimits | None = None,
        datasets: Mapping[str, Sequence[Scene]] | None = None,
        default_preset: str = DEFAULT_PRESET,
        envs: Sequence[str] = ("clevr",),
        canvas: Any = None,
        svg_preset: str = SVG_DEFAULT_PRESET,
    ) -> None:
        """``envs``: the environment kinds served (their steps have workers); ``canvas``:
        the SVG environment's frame (:class:`derender.svg.SvgCanvas`), default 64 px;
        ``default_preset`` / ``svg_preset``: the presets of clevr / svg steps that name
        none."""
        from .. import reward

        self.frame = frame
        self.limits = limits or ServerLimits()
        self.datasets = {k: list(v) for k, v in (datasets or {}).items()}
        self.targets = TargetCache(self.limits.max_targets)
        self._reward = reward
        self.presets = tuple(reward.PRESETS)
        for name in (default_preset, svg_preset):
            if name not in self.presets:
                raise ValueError(f"default preset {name!r} is not one of {self.presets}")
        self.default_presets = {"clevr": default_preset, "svg": svg_preset}
        self.frame_hash: str = frame.hash()
        self._generator = GeneratorConfig(frame=frame)
        self.envs = tuple(envs)
        self._canvas = canvas

    @property
    def default_preset(self) -> str:
        """The preset of CLEVR steps that name none (``info.default_preset``)."""
        return self.default_presets["clevr"]

    @default_preset.setter
    def default_preset(self, name: str) -> None:
        """The panel changes it between runs; ValueError names an unknown preset."""
        if name not in self.presets:
            raise ValueError(f"default preset {name!r} is not one of {self.presets}")
        self.default_presets["clevr"] = name

    def answer(self, req: Ping | Info) -> dict[str, Any]:
        """The reply to a request the core answers by itself."""
        body = {"time": time.time()} if isinstance(req, Ping) else self.info()
        return {"v": PROTOCOL_VERSION, "id": req.id, "type": req.type, "ok": True, **body}

    def step_preset(self, req: Step | StepBatch, target: Target) -> str:
        """The preset a step against ``target`` is scored with: the request's, else the
        default of the target's env (SPEC.md 4, 0.4)."""
        return req.preset or self.default_presets[target.env]

    def passes(self, req: Step | StepBatch, preset: str) -> Passes:
        """What a step's worker runs (:meth:`Passes.of`); BadRequest for an unknown preset."""
        return Passes.of(self.reward_spec(preset), req.render, req.masks)

    def info(self) -> dict[str, Any]:
        frame = self.frame
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
            # added in 0.4 (SPEC.md 4): the default preset of each env's steps
            "default_presets": {env: self.default_presets[env] for env in self.envs},
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

    # -- targets ------------------------------------------------------------------
    def resolve(self, spec: TargetSpec | str, env: str | None = None) -> Resolved:
        """The target a spec names under a request's ``env`` (a str is a target id): from
        the cache, or the job that renders it. BadRequest or UnknownTarget for a spec that
        names nothing this server serves."""
        if isinstance(spec, str | TargetRef):
            target = self.targets.get(spec if isinstance(spec, str) else spec.target_id)
            if target.env not in self.envs:
                raise BadRequest(f"this server does not serve env {target.env!r}")
            return target
        kind = self.env_of(spec, env)
        if kind not in self.envs:
            raise BadRequest(
                f"this server serves envs {list(self.envs)}, not {kind!r} "
                "(a farm serves svg with svg_workers, clevr with workers)"
            )
        needs: NeedsRender
        if kind == "svg":
            text, tid = self.svg_source(spec)
            job = {"kind": "svg", "script": text, "masks": True, "elements": True}
            needs = NeedsRender(tid, job, svg=text)
        else:
            scene = self.scene_for(spec)
            tid = target_id(scene, self.frame_hash)
            job = {"kind": "render", "masks": True, "scene": scene_to_clevr(scene)}
            needs = NeedsRender(tid, job, scene=scene)
        return self.targets.get(tid) if tid in self.targets else needs

    def made(self, needs: NeedsRender, result: dict[str, Any]) -> Target:
        """The target a render job's result makes, cached. BadRequest for an SVG document
        the policy refused; KeyError, TypeError or ValueError for a garbled result."""
        if needs.svg is not None:
            return self.svg_target_from(needs.target_id, needs.svg, ScriptRun.from_wire(result))
        assert needs.scene is not None
        target = Target(
            needs.target_id, needs.scene, result["image"], result.get("masks"), self.frame_hash
        )
        return self.targets.put(target)

    # -- steps --------------------------------------------------------------------
    def step_job(
        self, item: StepItem, target: Target, passes: Passes, env: str | None
    ) -> dict[str, Any]:
        """The worker job of one script scored against ``target``; it names no target.
        BadRequest if the request's ``env`` is not the target's."""
        if env is not None and env != target.env:
            raise BadRequest(f"{target.target_id} is a target of env {target.env!r}, not {env!r}")
        if target.env == "svg":  # SVG always renders: the image is the whole result
            elements = passes.elements
            return {"kind": "svg", "script": item.script, "masks": True, "elements": elements}
        return {
            "kind": "step",
            "script": item.script,
            "seed": item.seed,
            "masks": passes.masks,
            "render": passes.render,
        }

    def render_body(self, result: dict[str, Any], masks: bool) -> dict[str, Any]:
        """The reply members of ``render`` from a render job's result."""
        return {
            "image": result["image"],
            "masks": result.get("masks") if masks else None,
            "timings": result.get("timings", {}),
            "frame_hash": self.frame_hash,
        }

    # -- replies ------------------------------------------------------------------
    def reply(self, rid: object, kind: str, results: Sequence[ItemResult]) -> dict[str, Any]:
        """The reply to a request from its per-item results: a ``step_batch`` carries
        every item's body or error; any other request is its one body, or its error."""
        if kind == "step_batch":
            items = [{"error": r.to_dict()} if isinstance(r, ProtocolError) else r for r in results]
            return {"v": PROTOCOL_VERSION, "id": rid, "type": kind, "ok": True, "results": items}
        if isinstance(results[0], ProtocolError):
            return error_reply(rid, kind, results[0])
        return {"v": PROTOCOL_VERSION, "id": rid, "type": kind, "ok": True, **results[0]}

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
            "frame": self.frame.to_dict(),
            "scene": scene_to_clevr(target.scene, self.frame),
            "image": target.image,
            "masks": target.masks if masks else None,
        }
