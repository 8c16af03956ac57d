"""The OS boundary around a farm worker: a bubblewrap (``bwrap``) sandbox and its limits.

Agent code runs only in workers. The language layer (the script policy and the bpy proxy)
catches most attempts to misuse it; this layer is what holds when that fails. A worker
started by :func:`bwrap_argv` sees and may do only this:

- a read-only root made of ``/usr`` (system libraries, Mesa, ``setpriv``), the dynamic
  loader's and EGL's files under ``/etc`` (:data:`ETC_FILES`), the Python installation,
  this environment's site-packages (bpy, numpy, zmq ...), the derender package's modules
  (not its tests, not ``.git``) and, for a Blender binary, its install directory
  (:func:`runtime_tree`). Nothing else of the host: no ``/etc/passwd``, ``/root``, ``/home``,
  no farm run dir except the directory holding the worker's broker socket (read-only: it
  can connect, not create or delete);
- private tmpfs ``/tmp`` and ``/dev/shm`` of ``tmpfs_mb`` each (``HOME``, ``TMPDIR`` and
  Blender's user resources live there), a fresh ``/dev`` (null, zero, urandom, tty ...)
  and a ``/proc`` of its own PID namespace;
- no network (an empty network namespace), its own PID, IPC, UTS and cgroup namespaces:
  it cannot see or signal its supervisor, the broker or another worker;
- a cleared environment (:data:`BASE_ENV` plus what the supervisor adds): none of the
  parent's variables (a trainer's API keys) reach it;
- kernel uid and gid 65534 with no capabilities (effective, permitted, inheritable,
  ambient and bounding set empty) and ``no_new_privs``, plus a seccomp filter
  (:mod:`.seccomp`) that refuses new user namespaces and kernel interfaces a renderer
  never needs;
- the rlimits of :class:`ResourceLimits`, and death with its parent (``PR_SET_PDEATHSIG``
  on bwrap, ``--die-with-parent`` inside).

Getting to an unprivileged *kernel* uid takes two routes. As root, a user namespace does
not help: inside one, uid 65534 maps back to kernel uid 0. So a root supervisor runs bwrap
privileged (no user namespace), lets it keep only CAP_SETUID, CAP_SETGID and CAP_SETPCAP,
and runs ``setpriv`` (util-linux) in front of the command to become 65534, clear the
groups, the inheritable caps and the bounding set, and set ``no_new_privs``. A supervisor
that is not root gets a user namespace from bwrap (``--unshare-user --uid 65534``, mapped
to its own uid), drops every capability and disables further user namespaces.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import site
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

NOBODY = 65534  # the uid and gid every sandboxed worker runs as
SETPRIV = "/usr/bin/setpriv"
# The dynamic loader's configuration and the EGL/Vulkan vendor files, bound when present.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "glvnd", "vulkan", "OpenCL")
# Top-level directories that merged-/usr systems make symlinks into /usr.
_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# What every sandboxed process starts with (after --clearenv); the supervisor adds its own.
BASE_ENV: Mapping[str, str] = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "BLENDER_USER_RESOURCES": "/tmp/blender",
}
_PR_SET_PDEATHSIG = 1
_MB = 1 << 20


class OSSandboxError(Exception):
    """The base of the OS sandbox's errors; each message states the offending value."""


class SandboxConfigError(OSSandboxError, ValueError):
    """The farm asks for a sandbox that cannot be built as configured."""


class SocketDirNotPrivate(SandboxConfigError):
    """A broker socket's directory holds more than sockets, so it cannot be shared."""


class UnconfinedWorker(OSSandboxError):
    """A worker outside the OS sandbox was asked to run an untrusted script."""


@dataclass(frozen=True)
class Mount:
    """One bwrap mount operation: ``--ro-bind SRC DEST``, ``--symlink TARGET DEST`` ..."""

    op: str
    dest: str
    source: str | None = None  # None for --tmpfs, --dir, --dev, --proc
    perms: str | None = None  # --perms for --tmpfs and --dir
    size_mb: int | None = None  # --size for --tmpfs

    def args(self) -> list[str]:
        args = [] if self.perms is None else ["--perms", self.perms]
        if self.size_mb is not None:
            args += ["--size", str(self.size_mb * _MB)]
        args.append(self.op)
        return args + ([self.dest] if self.source is None else [self.source, self.dest])


@dataclass(frozen=True)
class ResourceLimits:
    """The rlimits of a worker; a value of 0 leaves that limit off (core is always 0)."""

    address_space_mb: int = 0
    cpu_s: int = 0
    open_files: int = 1024
    file_size_mb: int = 512
    processes: int = 0

    def pairs(self) -> list[tuple[int, int]]:
        """(RLIMIT_*, value) for every limit that is on; values in the kernel's units."""
        limits = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, self.open_files)]
        for what, value in (
            (resource.RLIMIT_AS, self.address_space_mb * _MB),
            (resource.RLIMIT_CPU, self.cpu_s),
            (resource.RLIMIT_FSIZE, self.file_size_mb * _MB),
            (resource.RLIMIT_NPROC, self.processes),
        ):
            if value > 0:
                limits.append((what, value))
        return limits

    def preexec(self) -> Callable[[], None]:
        """A ``preexec_fn``: set these limits (soft = hard) and die with the parent.

        Runs in the child between fork and exec, so bwrap and everything it starts inherit
        the limits; without privileges, nothing inside can raise a hard limit again."""
        pairs = self.pairs()

        def run() -> None:
            for what, value in pairs:
                _, hard = resource.getrlimit(what)
                soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
                resource.setrlimit(what, (soft, soft))
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

        return run


@dataclass(frozen=True)
class SandboxSpec:
    """What one sandboxed process may see besides the system: see the module docstring."""

    readable: tuple[Path, ...]  # host trees bound read-only at their own path
    socket_dirs: tuple[Path, ...] = ()  # directories of broker sockets it must reach
    env: Mapping[str, str] = field(default_factory=dict)  # added to BASE_ENV
    devices: tuple[Mount, ...] = ()  # e.g. :func:`.gpu_devices.gpu_mounts`
    mounts: tuple[Mount, ...] = ()  # the role's own binds (:mod:`.shader_cache`)
    tmpfs_mb: int = 512  # size of each private tmpfs (/tmp, /dev/shm)


def privileged() -> bool:
    """True when bwrap would run as root here (then the setpriv route is taken)."""
    return os.geteuid() == 0


# What a worker imports besides derender and the standard library (bpy comes with Blender
# or with the venv's site-packages).
WORKER_IMPORTS = ("zmq", "numpy", "PIL")


def import_roots() -> tuple[Path, ...]:
    """The directories a fresh interpreter needs on ``sys.path`` to import the derender
    that runs here and its dependencies, where its own site-packages do not hold them.

    Empty in a venv that has derender installed. Not empty inside Blender's GUI, where the
    add-on is an extension (``bl_ext.user_default.derender``) and its wheels sit in the
    extensions' own site-packages: then the farm process and its workers are pointed at
    the same files the add-on runs from."""
    import importlib

    from .. import __file__ as package_init

    default = {Path(p).resolve() for p in site.getsitepackages()}
    roots: list[Path] = []
    package = Path(package_init).resolve().parent
    if package.name == "derender" and package.parent not in default:
        roots.append(package.parent)
    for name in WORKER_IMPORTS:
        module = importlib.import_module(name)
        root = Path(cast(str, module.__file__)).resolve().parent.parent
        if root not in default and root not in roots:
            roots.append(root)
    return tuple(roots)


def runtime_tree(blender: str | None = None) -> tuple[Path, ...]:
    """The host paths a worker's interpreter needs, to be bound read-only at their path.

    The Python installation (``sys.base_prefix``: interpreter, stdlib, libpython), the
    environment's ``pyvenv.cfg``, ``bin`` and site-packages (bpy and every dependency),
    the derender package's modules when it is not installed in site-packages (an editable
    install: the repository's tests, ``.git`` and other files stay out) and the install
    directory of a Blender binary. Paths under ``/usr`` are dropped: it is bound whole.
    """
    from .. import __file__ as package_init

    paths = [Path(sys.base_prefix)]
    prefix = Path(sys.prefix)
    if prefix != Path(sys.base_prefix):
        paths += [prefix / "pyvenv.cfg", prefix / "bin"]
    paths += [Path(p) for p in site.getsitepackages()]
    package = Path(package_init).resolve().parent
    if not any(package.is_relative_to(p.resolve()) for p in paths):
        paths += sorted(
            p
            for p in package.iterdir()
            if (p.suffix == ".py" and p.is_file()) or (p / "__init__.py").is_file()
        )
    if blender is not None:
        paths.append(Path(shutil.which(blender) or blender).resolve().parent)
    paths += [r for r in import_roots() if r != package.parent]  # the wheels' directories
    kept: list[Path] = []
    for p in paths:
        if (
            p.exists()
            and not p.is_relative_to("/usr")
            and not any(p.is_relative_to(k) for k in kept)
        ):
            kept.append(p)
    return tuple(kept)


def _system_mounts() -> list[Mount]:
    mounts = [Mount("--ro-bind", "/usr", "/usr")]
    for name in _USR_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            mounts.append(Mount("--symlink", str(host), os.readlink(host)))
        elif host.is_dir():
            mounts.append(Mount("--ro-bind", str(host), str(host)))
    for name in ETC_FILES:
        if (Path("/etc") / name).exists():
            mounts.append(Mount("--ro-bind", f"/etc/{name}", f"/etc/{name}"))
    return mounts


def _with_parents(mounts: Sequence[Mount]) -> list[str]:
    """bwrap args for ``mounts``, each preceded by the directories it needs, made 0755.

    bwrap would create missing parents itself, but mode 0700 and owned by root: uid 65534
    could not walk through them (to /root/.pyenv, say). Parents inside a bound host tree
    exist there already; inside a tmpfs (/tmp, /dev) they are made like any other."""
    made: set[Path] = {Path("/")}
    bound: list[Path] = []
    args: list[str] = []
    for m in mounts:
        dest = Path(m.dest)
        for parent in reversed(dest.parents):
            if parent in made or any(parent.is_relative_to(b) for b in bound):
                continue
            args += Mount("--dir", str(parent), perms="0755").args()
            made.add(parent)
        args += m.args()
        made.add(dest)
        if m.op not in ("--tmpfs", "--dev", "--dir"):
            bound.append(dest)
    return args


def bwrap_argv(
    command: Sequence[str],
    spec: SandboxSpec,
    seccomp_fd: int | None = None,
    as_root: bool | None = None,
) -> list[str]:
    """The bwrap command line that runs ``command`` in the sandbox ``spec`` describes.

    ``seccomp_fd`` is an open fd holding :func:`.seccomp.filter_program` (the caller passes
    it to the child); ``as_root`` picks the route (default: :func:`privileged`)."""
    root = privileged() if as_root is None else as_root
    mounts = [
        *_system_mounts(),
        Mount("--tmpfs", "/tmp", perms="1777", size_mb=spec.tmpfs_mb),
        *(Mount("--ro-bind", str(p), str(p)) for p in spec.readable),
        *(Mount("--ro-bind", str(d), str(d)) for d in spec.socket_dirs),
        Mount("--dev", "/dev"),
        Mount("--tmpfs", "/dev/shm", perms="1777", size_mb=spec.tmpfs_mb),
        Mount("--proc", "/proc"),
        *spec.devices,
        *spec.mounts,
    ]
    argv = [shutil.which("bwrap") or "bwrap", *_with_parents(mounts)]
    argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    argv += ["--unshare-cgroup-try", "--hostname", "sandbox"]
    if not root:
        argv += ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
        argv += ["--disable-userns"]
    argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if root:  # what setpriv needs to drop to 65534 and empty the bounding set
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
            argv += ["--cap-add", cap]
    argv += ["--clearenv"]
    for key, value in {**BASE_ENV, **spec.env}.items():
        argv += ["--setenv", key, value]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += ["--chdir", "/tmp", "--remount-ro", "/", "--"]
    if root:
        argv += [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        argv += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return argv + list(command)


def share_socket_dir(socket: Path) -> Path:
    """Make the broker socket ``socket`` connectable by uid 65534; return its directory.

    The directory is bound into the sandbox, so it must hold nothing but sockets; it is
    made 0755 and the socket 0666. The run dir above it stays 0700: on the host only the
    supervisor's user reaches them."""
    directory = socket.parent
    others = [p.name for p in directory.iterdir() if not p.is_socket()]
    if others:
        raise SocketDirNotPrivate(
            f"{directory} holds {sorted(others)} besides sockets; a socket shared with "
            "sandboxed workers needs a directory of its own"
        )
    directory.chmod(0o755)
    socket.chmod(0o666)
    return directory


def unavailable_reason(spec: SandboxSpec) -> str | None:
    """None if a sandbox like ``spec`` runs this interpreter here; else what failed."""
    from .seccomp import SeccompUnsupported, seccomp_fd

    if shutil.which("bwrap") is None:
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    if privileged() and not os.access(SETPRIV, os.X_OK):
        return f"{SETPRIV} (util-linux) is missing"
    try:
        fd = seccomp_fd()
    except SeccompUnsupported as exc:
        return str(exc)
    roots = [str(r) for r in import_roots()]
    probe = (
        f"import sys; sys.path[:0] = {roots!r}; "
        "from derender.farm.os_sandbox import confinement_gaps as g; print(*g(), sep='; ')"
    )
    try:
        out = subprocess.run(
            bwrap_argv([sys.executable, "-I", "-c", probe], spec, fd),
            capture_output=True,
            text=True,
            timeout=60,
            pass_fds=(fd,),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap did not run: {exc}"
    finally:
        os.close(fd)
    if out.returncode != 0:
        return f"bwrap failed (status {out.returncode}): {out.stderr.strip()[-500:]}"
    if out.stdout.strip():
        return f"the sandbox leaks: {out.stdout.strip()}"
    return None


def confinement_gaps() -> list[str]:
    """What this process may do that a sandboxed worker may not; [] inside the sandbox.

    A worker checks itself before it runs an untrusted script, so a worker started
    without bwrap (bwrap missing, or by hand) refuses them instead of trusting its
    launcher's word."""
    status: dict[str, str] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    gaps = []
    if 0 in (os.getuid(), os.geteuid()):
        gaps.append("it runs as uid 0")
    if int(status.get("CapEff", "1"), 16) or int(status.get("CapBnd", "1"), 16):
        gaps.append(f"it holds capabilities (CapBnd {status.get('CapBnd')})")
    if status.get("NoNewPrivs") != "1":
        gaps.append("it may gain privileges (no_new_privs is off)")
    if not os.statvfs("/").f_flag & os.ST_RDONLY:
        gaps.append("the root file system is writable")
    with open("/proc/net/dev") as fh:
        interfaces = {line.split(":")[0].strip() for line in fh.readlines()[2:]}
    if interfaces - {"lo"}:
        gaps.append(f"it has network interfaces {sorted(interfaces - {'lo'})}")
    return gaps


def sandboxed_pid(bwrap_pid: int) -> int | None:
    """The host pid of the command bwrap ``bwrap_pid`` runs (None until it exists).

    bwrap's first process waits outside; it starts the PID namespace's init (bwrap
    again, the reaper), which starts the command: the command is two levels down."""
    pid = bwrap_pid
    for _ in range(2):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                children = fh.read().split()
        except OSError:
            return None
        if not children:
            return None
        pid = int(children[0])
    return pid
