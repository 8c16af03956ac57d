"""Worker processes: start them, kill them whole, restart them with backoff.

The :class:`Supervisor` owns one farm's worker slots (step, target and SVG workers, by
slot number) and the lifecycle of the process in each: spawn with an unguessable
identity, SIGKILL of the whole process group, restart at once (a worker killed for a
job's sake: hard deadline, poison, recycling) or with exponential backoff (one that died
on its own). How a process is started (its command, OS sandbox, environment, rlimits, GPU
and log) is :class:`.launcher.WorkerLauncher`'s.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import FarmConfig
from .launcher import WorkerLauncher
from .os_sandbox import sandboxed_pid

log = logging.getLogger(__name__)


@dataclass(eq=False)
class WorkerProcess:
    """One running worker: its slot, role, generation, identity, process and temp dir."""

    slot: int
    role: str
    generation: int
    identity: str
    proc: subprocess.Popen
    tmpdir: Path | None  # None in the OS sandbox: its /tmp is a tmpfs of its own
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        """The pid of what was started (bwrap, in the sandbox); its group is the worker."""
        return self.proc.pid

    def host_pid(self) -> int:
        """The host pid of the worker's own process (inside bwrap, two levels down)."""
        if self.tmpdir is not None:
            return self.proc.pid
        return sandboxed_pid(self.proc.pid) or self.proc.pid


class Supervisor:
    """Owns the worker processes of one farm; the broker tells it whom to kill or restart."""

    def __init__(self, config: FarmConfig, run_dir: Path, backends: dict[str, str]) -> None:
        """``backends``: role -> the broker's local backend for that role."""
        self.config = config
        self.launcher = WorkerLauncher(config, Path(run_dir), backends)
        self.workers: dict[int, WorkerProcess] = {}
        self.restarts = 0
        self._generation = 0
        self._backoff: dict[int, float] = {}
        self._due: dict[int, float] = {}  # slot -> monotonic time of a scheduled restart

    @property
    def os_sandboxed(self) -> bool:
        return self.launcher.os_sandboxed

    @property
    def os_sandbox_problem(self) -> str | None:
        """Why workers are unconfined, if they are."""
        return self.launcher.os_sandbox_problem

    @property
    def network_isolated(self) -> bool:
        return self.launcher.network_isolated

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        c = self.config
        for slot in range(c.workers + c.target_workers + c.svg_workers):
            self.spawn(slot)

    def spawn(self, slot: int) -> WorkerProcess:
        """Start a fresh worker process in ``slot`` (which must be empty)."""
        if slot in self.workers:
            raise RuntimeError(f"worker slot {slot} is occupied by pid {self.workers[slot].pid}")
        self._generation += 1
        role = self.launcher.role(slot)
        # Unguessable, so a worker cannot connect again posing as another one.
        identity = f"{role[0]}{slot}-{self._generation}-{secrets.token_hex(4)}"
        proc, tmpdir = self.launcher.launch(self.launcher.worker_command(identity, role), slot)
        wp = WorkerProcess(slot, role, self._generation, identity, proc, tmpdir)
        self.workers[slot] = wp
        self._due.pop(slot, None)
        log.info("worker %s started (pid %d)", identity, proc.pid)
        return wp

    def kill(self, slot: int) -> None:
        """SIGKILL the worker's process group, reap it and delete its temp dir.

        In the sandbox the group is bwrap's: its death takes the PID namespace down."""
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
        if wp.tmpdir is not None:
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
        self.launcher.close()

    def slot_of(self, identity: str) -> int | None:
        for slot, wp in self.workers.items():
            if wp.identity == identity:
                return slot
        return None

    def host_pid(self, identity: str) -> int:
        """The host pid of worker ``identity``'s own process (0 if it is not running)."""
        slot = self.slot_of(identity)
        return 0 if slot is None else self.workers[slot].host_pid()

    def is_stopped(self, identity: str) -> bool:
        """True if worker ``identity``'s process is stopped (SIGSTOP, a debugger) or gone.

        A silent worker that is running is busy in one C call holding the GIL (its
        heartbeat thread cannot run): the job's hard deadline ends it, not silence."""
        pid = self.host_pid(identity)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return True
        return state in ("T", "t", "Z", "X")
