"""The panel's in-process server: the request core driving a Service in this Blender.

The one path that runs a script in the process that holds its target: the Blender panel's
"Run my script here", for the person's own scripts (labelled so in the UI). Every other
server is a farm (:mod:`.broker`), whose step workers hold no target. It scores steps with
:mod:`.scoring`, as the farm does, so both give the same rewards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from ..protocol import codec
from ..protocol.errors import BadRequest, InternalError, ProtocolError, RenderError
from ..protocol.messages import (
    PROTOCOL_VERSION,
    Info,
    Ping,
    Render,
    Request,
    Reset,
    ServerLimits,
    Step,
    StepBatch,
    StepItem,
    TargetRef,
    TargetSpec,
    parse_request,
)
from ..protocol.results import ScriptRun
from ..protocol.targets import Target, target_id
from ..reward.spec import DEFAULT_PRESET
from ..scenes import Scene
from .core import RequestCore, decode_request, error_reply
from .scoring import FinishedStep, score_steps

log = logging.getLogger(__name__)

# The SVG environment's documents are untrusted XML: only a farm's sandboxed SVG workers
# render them, never a process like this one.
_BPY_ONLY = (
    "this server runs bpy scripts only: svg targets and steps run on a farm's SVG workers "
    "(derender farm --svg-workers N)"
)


class ServiceLike(Protocol):
    """What the handler needs from ``addon.service.Service``."""

    frame: Any

    def render_scene(self, scene: Scene, masks: bool = True) -> Any: ...

    def step(self, script: str, seed: int = 0, masks: bool = True) -> ScriptRun: ...


class Handler(RequestCore):
    """Answers requests by running them on ``service``, in this process."""

    def __init__(
        self,
        service: ServiceLike,
        limits: ServerLimits | None = None,
        datasets: Mapping[str, Sequence[Scene]] | None = None,
        default_preset: str = DEFAULT_PRESET,
    ) -> None:
        super().__init__(service.frame, limits, datasets, default_preset)
        self.service = service

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
        if isinstance(req, Ping | Info):
            return self.answer(req)
        if isinstance(req, Reset):
            if self.env_of(req.target, req.env) == "svg":
                raise BadRequest(_BPY_ONLY)
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
                    raise BadRequest(_BPY_ONLY)
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
            score_steps([r for r in runs if isinstance(r, FinishedStep)], spec, name, self.frame)
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

    def _render(self, scene: Scene, masks: bool) -> Any:
        try:
            return self.service.render_scene(scene, masks=masks)
        except ProtocolError:
            raise
        except Exception as exc:  # Blender failures arrive as assorted exception types
            raise RenderError(f"rendering the scene failed: {type(exc).__name__}: {exc}") from exc
