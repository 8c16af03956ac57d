"""The broker's bookkeeping records: jobs (work for one worker), client requests, workers.

A client request (``Pending``) fans out into jobs: a ``step_batch`` of 64 scripts is 64
step jobs that run on all step workers at once, plus at most one render job per target
that is not cached yet, which a target worker runs. A job belongs to at most one worker
at a time; a result is accepted only from the worker the job is assigned to, and a
request is answered exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..protocol.errors import ProtocolError

# finish(result members, None) on success, finish(None, error) on failure
Finish = Callable[[dict[str, Any] | None, ProtocolError | None], None]

# Worker roles. Step workers run agent scripts (untrusted); target workers render targets
# and client scenes (trusted) and never receive a script; SVG workers render agent SVG
# (untrusted; no Blender: derender.farm.svg_worker), SVG targets too (a client's document
# is as untrusted as an agent's).
STEP, TARGET, SVG = "step", "target", "svg"
ROLES: tuple[str, ...] = (STEP, TARGET, SVG)


@dataclass(eq=False)
class Job:
    """One unit of worker work: ``body["kind"]`` is ``step``, ``render`` or ``svg``."""

    jid: int
    body: dict[str, Any]
    finish: Finish
    owner: Pending | None = None  # the request a step job serves (render jobs are shared)
    attempts: int = 0
    worker: str | None = None
    started: float = 0.0
    cancelled: bool = False

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def role(self) -> str:
        """Which workers may run it: scripts go to step workers, renders to target ones,
        agent SVG to SVG workers."""
        return {"step": STEP, "svg": SVG}.get(self.kind, TARGET)


@dataclass(eq=False)
class Pending:
    """One client request: its envelope, its per-item slots and when it expires."""

    envelope: list[bytes]
    rid: Any
    kind: str
    encoding: str
    expires: float
    slots: list[Any]  # a reply body (dict) or a ProtocolError per item
    remaining: int
    received: float = field(default_factory=time.monotonic)
    jobs: list[Job] = field(default_factory=list)
    answered: bool = False

    @property
    def key(self) -> tuple[bytes, Any]:
        """Client identity and request id: a duplicate of a pending request is dropped."""
        return (self.envelope[0], repr(self.rid))

    def fill(self, index: int, value: dict[str, Any] | ProtocolError) -> bool:
        """Set slot ``index`` once; True when that was the last slot to fill."""
        if self.answered or self.slots[index] is not None:
            return False
        self.slots[index] = value
        self.remaining -= 1
        return self.remaining == 0


@dataclass(eq=False)
class WorkerState:
    """What the broker knows about one connected worker."""

    identity: str
    slot: int | None  # None: a remote worker that joined by address
    role: str = STEP
    state: str = "starting"  # starting | idle | busy
    pid: int = 0
    started: float = field(default_factory=time.monotonic)
    last_beat: float = field(default_factory=time.monotonic)
    job: Job | None = None
    jobs_done: int = 0
    rss: int = 0
    node: str | None = None  # the worker host's node (remote workers; None: the farm's)
    gpu: int | None = None  # the GPU it is pinned to (None: not pinned)
    socket: Any = field(default=None, repr=False)  # the backend socket it is reached on

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.identity,
            "slot": self.slot,
            "role": self.role,
            "state": self.state,
            "pid": self.pid,
            "node": self.node,
            "gpu": self.gpu,
            "jobs": self.jobs_done,
            "rss_mb": round(self.rss / 2**20, 1),
            "age_s": round(time.monotonic() - self.started, 1),
        }
