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
    Info,
    Ping,
    Render,
    Request,
    Reset,
    ServerLimits,
    Step,
    StepBatch,
    StepItem,
    TargetSpec,
    parse_request,
)
from ..protocol.results import ScriptRun
from ..protocol.targets import Target
from ..reward.spec import DEFAULT_PRESET
from ..scenes import Scene
from .core import ItemResult, RequestCore, decode_request, error_reply
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
        if isinstance(req, Ping | Info):
            return self.answer(req)
        if isinstance(req, Reset | Step | StepBatch) and req.env == "svg":
            raise BadRequest(_BPY_ONLY)
        if isinstance(req, Reset):
            if self.env_of(req.target, req.env) == "svg":
                raise BadRequest(_BPY_ONLY)
            body = self.target_body(self.target(req.target), req.masks)
            return self.reply(req.id, req.type, [body])
        if isinstance(req, Step):
            return self.reply(req.id, req.type, [self.step(req.item, req.preset, req.masks)])
        if isinstance(req, StepBatch):
            return self.reply(req.id, req.type, self.step_batch(req.items, req.preset, req.masks))
        if isinstance(req, Render):
            return self.reply(req.id, req.type, [self.render(req.scene, req.masks)])
        # parse_request only makes the types above and Status
        raise BadRequest(f"{req.type!r} requests are answered by a farm, not this server")

    def target(self, spec: TargetSpec | str) -> Target:
        """The target for a spec (a str is a target id), from the cache or rendered now."""
        resolved = self.resolve(spec)
        if isinstance(resolved, Target):
            return resolved
        assert resolved.scene is not None  # this server serves clevr only
        result = self._render(resolved.scene, masks=True)
        return self.made(resolved, {"image": result.image, "masks": result.masks})

    def step(self, item: StepItem, preset: str | None, masks: bool) -> ItemResult:
        return self.step_batch([item], preset, masks, item_errors=False)[0]

    def step_batch(
        self,
        items: Sequence[StepItem],
        preset: str | None,
        masks: bool,
        item_errors: bool = True,
    ) -> list[ItemResult]:
        """Run every script, then score all of them in one batched reward call.

        An item that cannot run (e.g. an unknown target id) gets its error instead of
        sinking the batch; with ``item_errors=False`` (a ``step``) the error is raised.
        """
        name = preset or self.default_preset
        spec = self.reward_spec(name)
        runs: list[FinishedStep | ProtocolError] = []  # ProtocolError: the item's error
        for item in items:
            try:
                target = self.target(item.target)
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
        return [r if isinstance(r, ProtocolError) else next(done) for r in runs]

    def render(self, scene: Scene, masks: bool) -> dict[str, Any]:
        result = self._render(scene, masks)
        wire = {"image": result.image, "masks": result.masks, "timings": dict(result.timings)}
        return self.render_body(wire, masks)

    def _render(self, scene: Scene, masks: bool) -> Any:
        try:
            return self.service.render_scene(scene, masks=masks)
        except ProtocolError:
            raise
        except Exception as exc:  # Blender failures arrive as assorted exception types
            raise RenderError(f"rendering the scene failed: {type(exc).__name__}: {exc}") from exc
