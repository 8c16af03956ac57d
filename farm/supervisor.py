"""Worker processes: spawn them sandboxed at the OS level, kill whole groups, restart.

Each worker is ``python -m derender.farm.worker`` (the pip bpy module) or, with
``FarmConfig.blender``, ``blender -b --factory-startup --python-expr …``. It runs:

- in its own session/process group (``start_new_session``), so ``os.killpg`` takes
  Blender's helper threads and any child with it;
- in a fresh temp dir that is its cwd, ``TMPDIR`` and ``HOME`` and holds Blender's user
  resources (``BLENDER_USER_RESOURCES``), so no user preferences or add-ons load
  (factory startup) and everything it writes is deleted with it;
- without network: under ``unshare -n`` (a new, empty network namespace) where that works
  (it needs root or user namespaces; probed once). Local workers then reach the broker
  through an ``ipc://`` socket file, which a network namespace does not hide. Where
  ``unshare -n`` fails, workers run with the host network and ``network_isolated`` says so;
- with resource limits set in ``preexec_fn``: no core files, a file-size cap, an fd cap,
  optionally an address-space cap, and ``PR_SET_PDEATHSIG`` so a worker dies with its
  supervisor even if the supervisor is SIGKILLed.

GPU pinning (``FarmConfig.gpus``, round-robin by worker slot) sets ``CUDA_VISIBLE_DEVICES``,
which selects the device Cycles renders on (CUDA/OptiX). It does NOT pin EEVEE or
Workbench: headless Blender 5.0 draws through OpenGL on an EGL context made from
``eglGetDisplay(EGL_DEFAULT_DISPLAY)`` (``GHOST_SystemHeadless`` → ``GHOST_ContextEGL``,
falling back to ``EGL_MESA_platform_surfaceless``); it never enumerates EGL devices and
reads no environment variable to choose one, so the EGL vendor library decides which GPU
it gets (not verified on a multi-GPU machine: none was available while writing this). To
spread EEVEE workers over GPUs, make each worker see only its GPU: run workers in
containers with ``NVIDIA_VISIBLE_DEVICES`` set per worker, or start one remote worker per
GPU that joins the broker by address.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import secrets
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import FarmConfig
from .jobs import STEP, TARGET

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(eq=False)
class WorkerProcess:
    """One running worker: its slot, role, generation, identity, process and temp dir."""

    slot: int
    role: str
    generation: int
    identity: str
    proc: subprocess.Popen
    tmpdir: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid


def network_isolation_works() -> bool:
    """True if ``unshare -n`` can run a command here (root or user namespaces)."""
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        return subprocess.run([exe, "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _preexec(config: FarmConfig) -> Callable[[], None]:
    """Runs in the child between fork and exec: rlimits and death with the parent."""
    mb = 1 << 20
    limits = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, config.rlimit_nofile)]
    if config.rlimit_fsize_mb > 0:
        limits.append((resource.RLIMIT_FSIZE, config.rlimit_fsize_mb * mb))
    if config.rlimit_as_mb > 0:
        limits.append((resource.RLIMIT_AS, config.rlimit_as_mb * mb))

    def run() -> None:
        for what, value in limits:
            _, hard = resource.getrlimit(what)
            soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(what, (soft, soft))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return run


class Supervisor:
    """Owns the worker processes of one farm; the broker tells it whom to kill or restart."""

    def __init__(self, config: FarmConfig, run_dir: Path, backends: dict[str, str]) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.backends = backends  # role -> the broker's local backend for that role
        self.network_isolated = config.isolate_network and network_isolation_works()
        if config.isolate_network and not self.network_isolated:
            log.warning("`unshare -n` does not work here: workers run with the host network")
        self.workers: dict[int, WorkerProcess] = {}
        self.restarts = 0
        self._generation = 0
        self._backoff: dict[int, float] = {}
        self._due: dict[int, float] = {}  # slot -> monotonic time of a scheduled restart

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        for slot in range(self.config.workers + self.config.target_workers):
            self.spawn(slot)

    def role(self, slot: int) -> str:
        """Slots 0..workers-1 hold step workers, the rest target workers."""
        return STEP if slot < self.config.workers else TARGET

    def spawn(self, slot: int) -> WorkerProcess:
        """Start a fresh worker process in ``slot`` (which must be empty)."""
        if slot in self.workers:
            raise RuntimeError(f"worker slot {slot} is occupied by pid {self.workers[slot].pid}")
        self._generation += 1
        role = self.role(slot)
        # Unguessable, so a worker cannot connect again posing as another one.
        identity = f"{role[0]}{slot}-{self._generation}-{secrets.token_hex(4)}"
        tmpdir = Path(tempfile.mkdtemp(prefix=f"{role[0]}{slot}-", dir=self.run_dir))
        env = self._env(slot, tmpdir)
        cmd = self._command(identity, role)
        proc = subprocess.Popen(
            cmd,
            cwd=tmpdir,
            env=env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # Blender prints render progress there
            preexec_fn=_preexec(self.config),
        )
        wp = WorkerProcess(slot, role, self._generation, identity, proc, tmpdir)
        self.workers[slot] = wp
        self._due.pop(slot, None)
        log.info("worker %s started (pid %d)", identity, proc.pid)
        return wp

    def kill(self, slot: int) -> None:
        """SIGKILL the worker's whole process group, reap it and delete its temp dir."""
        wp = self.workers.pop(slot, None)
        if wp is None:
            return
        try:
            os.killpg(wp.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            wp.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.error("worker %s (pid %d) survived SIGKILL for 10 s", wp.identity, wp.pid)
        shutil.rmtree(wp.tmpdir, ignore_errors=True)

    def restart(self, slot: int, blame: bool) -> None:
        """Kill ``slot`` and schedule a new worker: at once, or with backoff if ``blame``.

        A worker is blamed when it died on its own (crash at start-up, or while idle);
        a worker killed for a job's sake (hard deadline, poison, recycling) is not.
        """
        self.kill(slot)
        self.restarts += 1
        delay = 0.0
        if blame:
            delay = self._backoff.get(slot, self.config.restart_backoff)
            self._backoff[slot] = min(2 * delay, self.config.restart_backoff_max)
        self._due[slot] = time.monotonic() + delay

    def healthy(self, slot: int) -> None:
        """A worker in ``slot`` did useful work: forget its backoff."""
        self._backoff.pop(slot, None)

    def exited(self) -> list[WorkerProcess]:
        """Workers whose process has exited since the last call (still in ``workers``)."""
        return [wp for wp in self.workers.values() if wp.proc.poll() is not None]

    def spawn_due(self) -> list[WorkerProcess]:
        now = time.monotonic()
        due = [slot for slot, at in self._due.items() if at <= now]
        return [self.spawn(slot) for slot in due]

    def stop(self) -> None:
        for slot in list(self.workers):
            self.kill(slot)
        self._due.clear()

    # -- how a worker is launched ---------------------------------------------------
    def _env(self, slot: int, tmpdir: Path) -> dict[str, str]:
        env = dict(os.environ)
        for key in ("TMPDIR", "TEMP", "TMP", "HOME"):
            env[key] = str(tmpdir)
        env["BLENDER_USER_RESOURCES"] = str(tmpdir / "blender")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if self.config.gpus:
            gpu = str(self.config.gpus[slot % len(self.config.gpus)])
            env["CUDA_VISIBLE_DEVICES"] = gpu  # Cycles only; see the module docstring
        return env

    def worker_args(self, identity: str, role: str) -> list[str]:
        return [
            "--connect",
            self.backends[role],
            "--identity",
            identity,
            "--role",
            role,
            "--config",
            _config_json(self.config),
        ]

    def _command(self, identity: str, role: str) -> list[str]:
        args = self.worker_args(identity, role)
        if self.config.blender:
            # Blender's bundled Python is 3.11 like ours: make this environment's packages
            # (and the editable derender install) importable, then run the same main.
            expr = (
                "import site, sys; "
                + "; ".join(f"site.addsitedir({p!r})" for p in site.getsitepackages())
                + "; from derender.farm.worker import main; "
                "sys.exit(main(sys.argv[sys.argv.index('--') + 1:]))"
            )
            cmd = [self.config.blender, "-b", "--factory-startup", "--python-expr", expr, "--"]
            cmd += args
        else:
            cmd = [sys.executable, "-m", "derender.farm.worker", *args]
        if self.network_isolated:
            cmd = [shutil.which("unshare") or "unshare", "-n", "--", *cmd]
        return cmd


def _config_json(config: FarmConfig) -> str:
    import json

    return json.dumps(config.to_dict(), separators=(",", ":"))
