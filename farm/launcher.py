"""How a worker process is started: its command, its OS sandbox, its environment, limits
and log.

Each worker is ``python -I -B -m derender.addon.worker`` (the pip bpy module; SVG workers
``derender.farm.svg_worker``) or, with ``FarmConfig.blender``,
``blender -b --factory-startup --python-expr …``, started by :meth:`WorkerLauncher.launch`:

- in the OS sandbox of :mod:`.os_sandbox` (bubblewrap: read-only root of what Python,
  Blender and derender need, private /tmp and /dev/shm, no network, own PID namespace,
  kernel uid 65534 without capabilities, a seccomp filter, a cleared environment). Its
  only way out is the broker's ``ipc://`` socket of its role, whose directory alone is
  bound in (a step worker cannot reach the target workers' backend); a ``tcp://``
  backend is refused for local workers (they have no network);
- in its own session (``start_new_session``): ``os.killpg`` on bwrap's group kills bwrap,
  and ``--die-with-parent`` takes the PID namespace and everything in it along;
- with the rlimits of :func:`worker_limits` (address space, CPU time, open files, file
  size, processes, no core) and ``PR_SET_PDEATHSIG``, so a worker dies with its supervisor
  even if the supervisor is SIGKILLed;
- with its stderr (Blender's own messages) appended to one worker log, never the terminal.

Where bwrap is missing or cannot build the sandbox, workers still start (trusted target
renders need them) but, finding themselves unconfined, refuse untrusted scripts
(:func:`.os_sandbox.confinement_gaps`). ``FarmConfig.os_sandbox = False``
(``derender farm --no-os-sandbox``) runs workers without bwrap and lets them run scripts:
then each has a fresh host temp dir (cwd, ``HOME``, ``TMPDIR``, Blender's user resources)
and runs under ``unshare -n`` where that works (``isolate_network``).

GPU pinning (``FarmConfig.gpus``, round-robin by worker slot): a sandboxed worker gets the
device nodes of its own GPU only (:func:`.gpu_devices.gpu_mounts`), which pins CUDA,
OptiX and EGL alike; an unsandboxed one gets ``CUDA_VISIBLE_DEVICES``, which selects the
device Cycles renders on but does NOT pin EEVEE or Workbench: headless Blender 5.0 draws
through an EGL context made from ``eglGetDisplay(EGL_DEFAULT_DISPLAY)`` and reads no
variable to choose a GPU. Neither was verified on a multi-GPU machine (none was available
while writing this).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from . import shader_cache
from .config import FarmConfig
from .gpu_devices import gpu_mounts
from .jobs import STEP, SVG, TARGET
from .os_sandbox import (
    BASE_ENV,
    Mount,
    ResourceLimits,
    SandboxConfigError,
    SandboxSpec,
    bwrap_argv,
    import_roots,
    privileged,
    runtime_tree,
    share_socket_dir,
    unavailable_reason,
)
from .seccomp import seccomp_fd

log = logging.getLogger(__name__)

# What a farm started with --no-os-sandbox gives up; logged once, loudly.
NO_OS_SANDBOX = (
    "the OS sandbox is OFF (--no-os-sandbox): a script that escapes the language sandbox "
    "runs as this farm's user ({user}) with its files, its network (unless `unshare -n` "
    "works) and its processes: it can read and write every file that user can, signal "
    "this farm and its workers, and persist; only rlimits remain"
)


class BackendNotReachable(SandboxConfigError):
    """Sandboxed local workers have no network: their backend must be an ``ipc://`` socket."""


def network_isolation_works() -> bool:
    """True if ``unshare -n`` can run a command here (root or user namespaces)."""
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        return subprocess.run([exe, "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def worker_limits(config: FarmConfig) -> ResourceLimits:
    """The rlimits of every worker: FarmConfig's ``rlimit_*`` fields (0 = off), and for
    those left at None the defaults derived here.

    - Address space: 4096 MiB + 96 MiB per CPU. A worker's VmPeak was measured at 2.2 GB
      (Workbench, 128-512 px) and 2.4 GB (Cycles) with 14 threads on 2 CPUs; each render
      thread adds up to ~72 MiB of stack and malloc arena, and Blender starts about one
      per CPU. Off when ``gpus`` is set: GPU drivers reserve huge virtual ranges.
    - CPU time: a backstop for a worker's whole life, far above what the broker's hard
      deadline lets one job use: ``start_timeout`` plus ``hard_deadline`` for each of the
      ``recycle_every`` jobs it serves before it is replaced (500 when recycling is off).
    - Processes: RLIMIT_NPROC counts every task (thread or process) of the kernel uid on
      the whole host, so it is shared by all workers of every farm here (all are uid
      65534): ``max(workers, 32)`` x (2 per CPU + 64), about five times what they use (a
      worker has about CPUs + 12 threads: 14 measured on 2 CPUs); it stops a fork bomb,
      not one worker's share. Off when the supervisor is not root: its workers then count
      against the caller's own uid and everything it runs.
    """
    cpus = os.cpu_count() or 1
    address_space = config.rlimit_as_mb
    if address_space is None:
        address_space = 0 if config.gpus else 4096 + 96 * cpus
    cpu = config.rlimit_cpu_s
    if cpu is None:
        cpu = int(config.start_timeout + config.hard_deadline * (config.recycle_every or 500))
    processes = config.rlimit_nproc
    if processes is None:
        processes = max(config.workers, 32) * (2 * cpus + 64) if privileged() else 0
    return ResourceLimits(
        address_space_mb=address_space,
        cpu_s=cpu,
        open_files=config.rlimit_nofile,
        file_size_mb=config.rlimit_fsize_mb,
        processes=processes,
    )


def socket_path(backend: str) -> Path:
    """The socket file of an ``ipc://`` backend; BackendNotReachable for anything else."""
    if not backend.startswith("ipc://"):
        raise BackendNotReachable(
            f"local workers run in the OS sandbox without network and reach the broker "
            f"over an ipc:// socket; the backend is {backend!r}"
        )
    return Path(backend.removeprefix("ipc://"))


class WorkerLauncher:
    """Starts worker processes in their sandbox; the :class:`.supervisor.Supervisor` decides
    when and which."""

    def __init__(self, config: FarmConfig, run_dir: Path, backends: dict[str, str]) -> None:
        """``backends``: role -> the broker's local backend for that role (the roles this
        launcher starts workers for)."""
        self.config = config
        self.run_dir = Path(run_dir)
        self.backends = backends
        self.limits = worker_limits(config)
        self.os_sandboxed = False
        self.os_sandbox_problem: str | None = None  # why workers are unconfined, if they are
        self._specs: dict[str, SandboxSpec] = {}
        self._gpu_mounts: dict[int, tuple[Mount, ...]] = {}
        if config.os_sandbox:
            self._gpu_mounts = {g: gpu_mounts(g) for g in config.gpus}
            runtime = runtime_tree(config.blender)
            cache_dir = shader_cache.make_dir(self.run_dir)
            for role in backends:
                mounts, cache_env = shader_cache.sandbox_parts(role, cache_dir)
                self._specs[role] = SandboxSpec(
                    runtime,
                    (share_socket_dir(socket_path(backends[role])),),
                    tmpfs_mb=config.os_sandbox_tmpfs_mb,
                    env={**self.render_env(role), **cache_env},
                    mounts=mounts,
                )
            self.os_sandbox_problem = unavailable_reason(self._specs[STEP])
            self.os_sandboxed = self.os_sandbox_problem is None
            if not self.os_sandboxed:
                log.error(
                    "the OS sandbox does not work here (%s): workers start without it and "
                    "refuse untrusted scripts; install bubblewrap, or start the farm with "
                    "--no-os-sandbox to accept the risk",
                    self.os_sandbox_problem,
                )
        else:
            self.os_sandbox_problem = "off (--no-os-sandbox)"
            log.warning(NO_OS_SANDBOX.format(user=os.getuid()))
        self.network_isolated = self.os_sandboxed or (
            config.isolate_network and network_isolation_works()
        )
        if not self.network_isolated and config.isolate_network:
            log.warning("`unshare -n` does not work here: workers run with the host network")
        default_log = Path(tempfile.gettempdir()) / f"derender-workers-{os.getuid()}.log"
        self.worker_log = Path(config.worker_log or default_log)
        # One append-mode file for every worker: each write lands whole at its end.
        self._log = open(self.worker_log, "ab", buffering=0)  # closed in close()
        log.info("workers' own output (Blender's messages) goes to %s", self.worker_log)

    def role(self, slot: int) -> str:
        """Slots 0..workers-1 hold step workers, the next target_workers target workers,
        the rest SVG workers."""
        if slot < self.config.workers:
            return STEP
        return TARGET if slot < self.config.workers + self.config.target_workers else SVG

    def launch(
        self, command: Sequence[str], slot: int, stdout: int | IO[Any] = subprocess.DEVNULL
    ) -> tuple[subprocess.Popen, Path | None]:
        """Start ``command`` as the worker in ``slot`` is started; returns it and its host
        temp dir (None in the OS sandbox).

        The supervisor passes the worker's command (:meth:`worker_command`); whatever
        runs here gets the same sandbox, environment and limits. ``stdout`` defaults to
        nothing: Blender prints render progress there."""
        if self._specs and self.os_sandboxed:
            fd = seccomp_fd()
            try:
                proc = subprocess.Popen(
                    bwrap_argv(command, self.sandbox(slot), fd),
                    cwd="/",
                    env={},  # bwrap clears it again and sets only the sandbox's own
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=self._log,
                    pass_fds=(fd,),
                    preexec_fn=self.limits.preexec(),
                )
            finally:
                os.close(fd)
            return proc, None
        tmpdir = Path(tempfile.mkdtemp(prefix=f"w{slot}-", dir=self.run_dir))
        env = {
            **BASE_ENV,
            "HOME": str(tmpdir),
            "TMPDIR": str(tmpdir),
            "BLENDER_USER_RESOURCES": str(tmpdir / "blender"),
            **self.render_env(self.role(slot)),
        }
        gpu = self.gpu(slot)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        if self.network_isolated:
            command = [shutil.which("unshare") or "unshare", "-n", "--", *command]
        proc = subprocess.Popen(
            command,
            cwd=tmpdir,
            env=env,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=self._log,
            preexec_fn=self.limits.preexec(),
        )
        return proc, tmpdir

    def close(self) -> None:
        self._log.close()

    def render_env(self, role: str) -> dict[str, str]:
        """What a worker of ``role`` adds for rendering: Blender workers' GL threads (an
        SVG worker renders no GL)."""
        return {} if role == SVG else self.config.render_env()

    def gpu(self, slot: int) -> int | None:
        """The GPU the worker in ``slot`` is pinned to (round-robin), None if unpinned."""
        gpus = self.config.gpus
        return gpus[slot % len(gpus)] if gpus else None

    def sandbox(self, slot: int) -> SandboxSpec:
        """The sandbox of the worker in ``slot``: its role's, plus its GPU if pinned."""
        spec = self._specs[self.role(slot)]
        gpu = self.gpu(slot)
        return spec if gpu is None else replace(spec, devices=self._gpu_mounts[gpu])

    def worker_args(self, identity: str, role: str) -> list[str]:
        return [
            "--connect",
            self.backends[role],
            "--identity",
            identity,
            "--role",
            role,
            "--config",
            json.dumps(self.config.to_dict(), separators=(",", ":")),
        ]

    def worker_command(self, identity: str, role: str) -> list[str]:
        """The worker's own command line (:meth:`launch` wraps it in the sandbox)."""
        args = self.worker_args(identity, role)
        roots = [str(r) for r in import_roots()]
        # An SVG worker is plain CPython (cairosvg), whatever runs the Blender workers.
        module = "derender.farm.svg_worker" if role == SVG else "derender.addon.worker"
        if self.config.blender and role != SVG:
            # Blender's bundled Python is 3.11 like ours: make this environment's packages
            # (and the editable derender install, or the add-on's files and wheels)
            # importable, then run the same main.
            expr = (
                "import site, sys; "
                + "; ".join(f"site.addsitedir({p!r})" for p in site.getsitepackages())
                + f"; sys.path[:0] = {roots!r}"
                + "; from derender.addon.worker import main; "
                "sys.exit(main(sys.argv[sys.argv.index('--') + 1:]))"
            )
            return [
                self.config.blender,
                "-b",
                "--factory-startup",
                "--python-expr",
                expr,
                "--",
                *args,
            ]
        # -I: no PYTHON* variables, no user site, no script dir or cwd on sys.path
        if not roots:
            return [sys.executable, "-I", "-B", "-m", module, *args]
        boot = (
            f"import sys; sys.path[:0] = {roots!r}; "
            f"from {module} import main; "
            "sys.exit(main(sys.argv[1:]))"
        )
        return [sys.executable, "-I", "-B", "-c", boot, *args]
