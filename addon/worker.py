"""The worker process: one headless Blender serving jobs from the farm's broker.

``python -m derender.addon.worker --connect ipc://SOCK --identity ID --role ROLE --config JSON``,
started by a :class:`~derender.farm.supervisor.Supervisor` (the farm's own, or a worker
host's on another machine: :mod:`derender.farm.remote`). A worker only ever connects to a
local ``ipc://`` socket and holds no key: on another host the trusted worker host holds
the CURVE keys and relays its frames to the farm, so a script that escapes finds neither
a key nor a network. The worker
connects a DEALER socket (identity ``ID``) to that ROUTER, says ``ready`` once Blender is
up, then answers one job at a time with :class:`addon.service.Service`
(the same code path as ``derender serve``). A second DEALER (identity ``ID#hb``) owned by
a heartbeat thread says ``hb`` every ``heartbeat_interval`` seconds: a SIGSTOPped or
wedged process stops beating and is replaced. A script that spins in Python keeps the
heartbeat thread alive, which is why the broker also enforces a per-job hard deadline.

A worker has one role. A ``step`` worker runs agent scripts and nothing else: it never
sees a target (no job it gets names one), so a script that reads its whole process finds
no answer to copy. A ``target`` worker renders targets and client scenes and never runs a
script. Each refuses the other role's jobs.

Internal messages (codec frames, never pickled) — worker to broker:
``{"kind": "ready", "pid", "frame_hash", "role"}``, ``{"kind": "hb", "rss"}``,
``{"kind": "result", "job", "ok": true, ...result members}`` or
``{"kind": "result", "job", "ok": false, "error": {"code", "message"}}``;
broker to worker: ``{"kind": "step", "job", "script", "seed", "masks", "render"}``,
``{"kind": "render", "job", "scene", "masks"}``.

A worker runs untrusted scripts only inside the OS sandbox (:mod:`.os_sandbox`): one that
finds itself unconfined (bwrap missing, or started by hand) answers every step with an
error that says why, unless the farm's config turns the sandbox off (``os_sandbox``).
Trusted target renders run either way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..farm import shader_cache, worker_loop
from ..farm.config import FarmConfig
from ..farm.os_sandbox import confinement_gaps
from ..farm.worker_loop import WrongRole
from ..scenes import Scene, scene_from_clevr


class Worker:
    """Runs jobs against one Service; ``handle`` maps a job dict to a reply dict."""

    def __init__(self, config: FarmConfig, role: str) -> None:
        shader_cache.seed()  # before Blender starts its GL (a no-op outside the sandbox)
        from .sandbox.limits import ScriptLimits
        from .service import Service

        self.config = config
        self.role = role
        limits = ScriptLimits(deadline_s=config.sandbox_deadline, **config.options)
        self.service = Service(config.frame(), limits)
        self.frame = self.service.frame
        # The first render compiles shaders (seconds under software GL): do it before
        # `ready`, so it never counts against a job's hard deadline or a benchmark.
        self.service.render_scene(Scene(()), masks=True)
        self.unconfined = confinement_gaps() if config.os_sandbox else []

    def handle(self, job: dict[str, Any]) -> dict[str, Any]:
        kind = job.get("kind")
        if (kind == "step") != (self.role == "step"):
            raise WrongRole(f"a {self.role} worker does not run {kind!r} jobs")
        if kind == "step":
            return self._step(job)
        if kind == "render":
            res = self.service.render_scene(
                scene_from_clevr(job["scene"]), masks=bool(job.get("masks", True))
            )
            return {"image": res.image, "masks": res.masks, "timings": dict(res.timings)}
        raise ValueError(f"unknown job kind {kind!r}")

    def _step(self, job: dict[str, Any]) -> dict[str, Any]:
        script = job["script"]
        worker_loop.require_confinement(self.unconfined)
        t0 = time.perf_counter()
        masks, render = bool(job.get("masks", False)), bool(job.get("render", True))
        res = self.service.step(script, int(job.get("seed", 0)), masks=masks, render=render)
        timings = {**res.timings, "service": time.perf_counter() - t0}
        return replace(res, timings=timings).to_wire(self.frame)


def main(argv: Sequence[str] | None = None) -> int:
    return worker_loop.main(argv, Worker, "python -m derender.addon.worker", ("step", "target"))


if __name__ == "__main__":
    raise SystemExit(main())
