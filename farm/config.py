"""Farm configuration: one dataclass, loadable from ``farm.toml`` and overridable by flags.

Every knob the broker, supervisor and workers share lives here so that ``derender farm``,
:class:`~derender.farm.local.LocalFarm` and the tests configure the farm the same way.
The config travels to the farm process as JSON (``to_dict``/``from_dict``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..reward.spec import DEFAULT_PRESET, SVG_DEFAULT_PRESET
from ..scenes import FrameSpec
from ..scenes.frame import ENGINES, default_engine
from .jobs import SVG


def endpoints(bind: str | Sequence[str] | None) -> tuple[str, ...]:
    """One endpoint, several, or none, as the tuple ``FarmConfig.bind`` holds."""
    return (bind,) if isinstance(bind, str) else tuple(bind or ())


@dataclass(frozen=True)
class FarmConfig:
    """What a farm runs: how many workers, which frame, which deadlines and limits."""

    # step workers: the only processes that run agent scripts; 0: only worker hosts' ones
    # (`derender farm join`, RayFarm's actors) run them
    workers: int = 2
    # Target workers render targets and trusted scenes and never run an agent script, so
    # no process that runs agent code ever holds a target (or learns one from a job).
    target_workers: int = 1
    # SVG workers render agent SVG (derender.farm.svg_worker: CPython and cairosvg, no Blender)
    # in the same OS sandbox; 0 serves no svg steps. workers = target_workers = 0 with
    # svg_workers > 0 is an SVG-only farm that starts no Blender at all.
    svg_workers: int = 0
    svg_size: int = 64  # the SVG canvas side in px (the seed paper's 64x64)
    svg_deadline: float = 1.0  # seconds one SVG render may take (svg.policy.SvgLimits)
    engine: str = field(default_factory=default_engine)  # EEVEE with a GPU, else Workbench
    size: int = 128  # the frame's width in px
    height: int | None = None  # None: square (height = size)
    samples: int | None = None  # render samples; None keeps the FrameSpec default
    # client frontend endpoints (a str is one); (): a free loopback tcp port
    bind: tuple[str, ...] = ()
    remote_backend: str | None = None  # extra worker endpoint (tcp) for workers on other hosts
    # A PUB endpoint (loopback or ipc) on which the broker publishes every reply it sends,
    # as {"kind", "reply"}: how the Blender GUI shows what its server answered.
    monitor: str | None = None
    curve_secret: str | None = None  # the farm's CURVE secret key file (derender keys)
    curve_clients: str | None = None  # directory of accepted client and worker public keys
    gpus: tuple[int, ...] = ()  # workers are pinned round-robin; () = no pinning
    blender: str | None = None  # run workers under this Blender binary, not the bpy module
    # Software GL (Mesa llvmpipe, no GPU) threads per worker; None: this host's CPUs shared
    # out among the step workers, 0 when that leaves one or none each (llvmpipe then
    # rasterises in the render's own thread; its helper threads only add switching when
    # every core already has a worker: bench farm's bare loop, 2 CPUs, 64 px: 17% less
    # CPU per step). The pixels are the same. GPU renders ignore it.
    render_threads: int | None = None
    # deadlines (seconds)
    sandbox_deadline: float = 5.0  # in-process script deadline (the sandbox's)
    hard_deadline: float = 60.0  # a job running longer kills its worker
    request_timeout: float = 300.0  # a client request not answered by then gets `timeout`
    heartbeat_interval: float = 0.5
    heartbeat_timeout: float = 10.0  # no heartbeat for this long: the worker is dead
    start_timeout: float = 120.0  # a worker that is not ready by then is killed
    # lifecycle
    recycle_every: int = 500  # restart a worker after this many jobs (0: never)
    # An SVG worker keeps no state between jobs (a fresh tree and surface per render) and
    # a job takes ~2 ms against ~1 s to start a replacement: after 500 jobs it would spend
    # as long restarting as rendering (bench farm --env svg).
    svg_recycle_every: int = 20000
    max_attempts: int = 2  # a job whose worker died is retried until this many tries
    restart_backoff: float = 0.5  # first restart delay after an unexplained death
    restart_backoff_max: float = 30.0
    # limits (SPEC.md section 6)
    max_pending: int = 1024
    max_targets: int = 1024
    # OS sandbox for workers (farm/os_sandbox.py)
    os_sandbox: bool = True  # bubblewrap; False (--no-os-sandbox): workers run unconfined
    os_sandbox_tmpfs_mb: int = 512  # size of each private tmpfs (/tmp, /dev/shm)
    isolate_network: bool = True  # without the OS sandbox: `unshare -n` when it works here
    # rlimits of every worker (supervisor.worker_limits); 0: off; None: derived there
    rlimit_as_mb: int | None = None  # address space; derived: 4096 + 96 per CPU, off with gpus
    rlimit_cpu_s: int | None = None  # CPU seconds in a worker's life; derived from deadlines
    rlimit_nproc: int | None = None  # tasks of uid 65534, host-wide (all farms' workers)
    rlimit_fsize_mb: int = 512
    rlimit_nofile: int = 1024
    # reward and metrics
    preset: str = DEFAULT_PRESET  # the default reward preset of clevr steps
    svg_preset: str = SVG_DEFAULT_PRESET  # ... and of svg steps
    metrics_interval: float = 5.0  # seconds between metrics log lines; 0: off
    # Where the workers' stderr goes (Blender's own start-up messages, such as EGL's, and
    # a worker's crash output): appended to this file, not the terminal. None: the
    # system temp dir's derender-workers-<uid>.log.
    worker_log: str | None = None
    # extra sandbox budgets for the workers (fields of addon.sandbox.limits.ScriptLimits)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        for name, top in (("workers", 256), ("target_workers", 64), ("svg_workers", 256)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
                raise ValueError(f"{name} must be an int in 0..{top}, got {value!r}")
        if self.workers + self.svg_workers == 0 and not self.remote_backend:
            raise ValueError(
                "a farm needs step workers: workers or svg_workers must be >= 1, or a "
                "remote_backend for worker hosts (derender farm join, RayFarm)"
            )
        if "clevr" in self.envs() and not self.target_workers:
            raise ValueError("a farm with (Blender) step workers needs target_workers >= 1")
        if not isinstance(self.svg_size, int) or not 8 <= self.svg_size <= 1024:
            raise ValueError(f"svg_size must be an int in 8..1024, got {self.svg_size!r}")
        for name in ("size", "height"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or not 8 <= value <= 4096):
                raise ValueError(f"{name} must be an int in 8..4096, got {value!r}")
        threads = self.render_threads
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= 256
        ):
            raise ValueError(f"render_threads must be None or an int in 0..256, got {threads!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts!r}")
        for name in (
            "sandbox_deadline", "svg_deadline", "hard_deadline", "heartbeat_timeout",
            "request_timeout",
        ):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        object.__setattr__(self, "gpus", tuple(int(g) for g in self.gpus))
        object.__setattr__(self, "bind", endpoints(self.bind))

    def frame(self) -> FrameSpec:
        """The locked frame every worker renders in (and every target is made in)."""
        base = FrameSpec(engine=self.engine).with_size(self.size, self.height)
        return base if self.samples is None else replace(base, samples=self.samples)

    def render_env(self) -> dict[str, str]:
        """What a Blender worker's environment adds for rendering (:attr:`render_threads`)."""
        threads = self.render_threads
        if threads is None:
            share = (os.cpu_count() or 1) // max(1, self.workers)
            threads = share if share > 1 else 0
        return {"LP_NUM_THREADS": str(threads)}

    def canvas(self) -> Any:
        """The SVG environment's locked frame (:class:`derender.svg.SvgCanvas`)."""
        from ..svg.canvas import SvgCanvas

        return SvgCanvas(self.svg_size, self.svg_size)

    def recycle_after(self, role: str) -> int:
        """Jobs a worker of ``role`` serves before it is replaced (0: never)."""
        return self.svg_recycle_every if role == SVG else self.recycle_every

    def envs(self) -> tuple[str, ...]:
        """The environment kinds this farm serves: "clevr" with Blender step workers (its
        own, or those worker hosts add through ``remote_backend``), "svg" with SVG workers."""
        clevr = self.workers or self.remote_backend
        return (("clevr",) if clevr else ()) + (("svg",) if self.svg_workers else ())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FarmConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown farm config key(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> FarmConfig:
        """A ``farm.toml`` (top-level keys = field names), then non-None ``overrides``."""
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)
