"""Simulated escape: raw Python in the real OS sandbox of a worker cannot get out.

``escape_probe.py`` stands for agent code that got past the language layer. It is started
by :meth:`Supervisor.launch`, the same call that starts every worker (same bwrap setup,
environment, seccomp filter and rlimits; only the command differs), next to a real farm
whose pids it tries to signal.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from derender.farm import shader_cache
from derender.farm.config import FarmConfig
from derender.farm.launcher import worker_limits
from derender.farm.os_sandbox import BASE_ENV, NOBODY, privileged, sandboxed_pid
from derender.farm.supervisor import Supervisor

PROBE = (Path(__file__).parent / "escape_probe.py").read_text()
REPO = Path(__file__).resolve().parents[2]
SECRET = "sk-derender-test-secret-0123456789"


class Host:
    """A farm-like run dir (0700) with the workers' socket dir, another socket dir and an
    address file, and a Supervisor over it, as the broker makes them."""

    def __init__(self, **config: object) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix="derender-farm-"))
        self.sockets = []
        for name in ("step", "target"):
            (self.run_dir / name).mkdir()
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(self.run_dir / name / "backend.sock"))
            sock.listen()
            self.sockets.append(sock)
        (self.run_dir / "address").write_text("tcp://127.0.0.1:5555")
        self.config = FarmConfig(workers=2, **config)  # type: ignore[arg-type]
        backends = {r: f"ipc://{self.run_dir / r / 'backend.sock'}" for r in ("step", "target")}
        self.supervisor = Supervisor(self.config, self.run_dir, backends)
        assert self.supervisor.os_sandboxed, self.supervisor.os_sandbox_problem

    def launch(self, plan: dict, slot: int = 0) -> subprocess.Popen:
        proc, tmpdir = self.supervisor.launcher.launch(
            [sys.executable, "-I", "-c", PROBE, json.dumps(plan)], slot, stdout=subprocess.PIPE
        )
        assert tmpdir is None  # sandboxed: no host temp dir at all
        return proc

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        subprocess.run(["rm", "-rf", str(self.run_dir)], check=True)


def _plan(**extra: object) -> dict:
    return {"write": [], "read": [], "pids": [], "port": 9, "abstract": "none", **extra}


def _report(proc: subprocess.Popen) -> dict:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"the probe printed nothing (exit {proc.wait(timeout=30)})"
    return json.loads(line)


def _all_failed(report: dict, names: tuple[str, ...]) -> None:
    for name in names:
        assert not report[name]["succeeded"], (name, report[name])


def _no_capabilities(status: dict[str, str]) -> None:
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, (cap, status[cap])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _inner_pid(proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = sandboxed_pid(proc.pid)
        if pid is not None:
            return pid
        time.sleep(0.02)
    raise AssertionError("the sandboxed process never appeared")


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    os.environ["DERENDER_TEST_API_KEY"] = SECRET  # as a trainer's key would be
    h = Host()
    try:
        yield h
    finally:
        h.close()
        os.environ.pop("DERENDER_TEST_API_KEY", None)


@pytest.fixture(scope="module")
def escape(host: Host, farm) -> Iterator[dict]:
    """One probe run against the farm and a sandboxed sibling; the whole report."""
    token = f"escape-{os.getpid()}"
    sibling = host.launch(_plan(then="sleep"), slot=1)
    _report(sibling)
    sibling_pid = _inner_pid(sibling)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", listener.getsockname()[1]))
    udp.settimeout(0.5)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0{token}")
    abstract.listen()
    farm_pids = [farm.pid, *(w["pid"] for w in farm.status()["workers"])]
    pids = [os.getpid(), os.getppid(), sibling.pid, sibling_pid, *farm_pids]
    venv = Path(sys.prefix)
    site = next(p for p in map(Path, sys.path) if p.name == "site-packages")
    writes = [
        "/escape",
        f"/tmp/{token}",  # the sandbox's own tmpfs: allowed, but the host never sees it
        f"/dev/shm/{token}",
        str(venv / token),
        str(site / token),
        str(REPO / "farm" / token),
        str(host.run_dir / token),
        str(host.run_dir / "step" / token),
        str(host.run_dir / "gl-cache" / token),  # the shader cache target workers fill
        f"{shader_cache.SEED}/{token}",  # ... as this step worker sees it
        f"/etc/{token}",
    ]
    reads = [
        "/etc/passwd",
        "/etc/shadow",
        "/etc/hostname",
        "/root/.bashrc",
        "/root/.gitconfig",
        "/home",
        str(REPO / "tests"),
        str(REPO / ".git"),
        str(REPO / "pyproject.toml"),
        str(host.run_dir / "address"),
        str(host.run_dir / "target"),
        f"/proc/{os.getpid()}/environ",
        f"/proc/{farm.pid}/environ",
        "/sys/class/net",
    ]
    plan = _plan(
        write=writes,
        read=reads,
        pids=pids,
        port=listener.getsockname()[1],
        abstract=token,
        then="sleep",
    )
    proc = host.launch(plan)
    try:
        report = _report(proc)
        inner = _inner_pid(proc)
        with open(f"/proc/{inner}/status") as fh:
            report["host status"] = dict(line.rstrip("\n").split(":\t", 1) for line in fh)
        with open(f"/proc/{inner}/limits") as fh:
            report["host limits"] = fh.read()
        listener.settimeout(0.5)
        try:
            listener.accept()
            report["host accepted tcp"] = True
        except TimeoutError:
            report["host accepted tcp"] = False
        try:
            report["host got udp"] = udp.recv(64) != b""
        except TimeoutError:
            report["host got udp"] = False
        report["alive after"] = {pid: _alive(pid) for pid in pids}
        report["host files"] = [p for p in writes if os.path.exists(p)]
        for path in report["host files"]:  # only if the sandbox failed
            os.remove(path)
        report["token"] = token
        report["farm answers"] = farm.status()["frame_hash"] != ""
        yield report
    finally:
        for p in (proc, sibling):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        for sock in (listener, udp, abstract):
            sock.close()


def test_it_cannot_write_outside_its_own_tmp(escape):
    token = escape["token"]
    private = {f"/tmp/{token}", f"/dev/shm/{token}"}
    for name, result in escape.items():
        if name.startswith("write "):
            path = name.removeprefix("write ")
            assert result["succeeded"] == (path in private), (name, result)
    assert escape["host files"] == []  # not even its private tmp reached the host
    # the shared shader cache is there, and read-only: no worker can plant code for the next
    seeded = escape[f"write {shader_cache.SEED}/{token}"]
    assert "Errno 30" in seeded["detail"], seeded  # EROFS


def test_it_cannot_read_what_is_not_blender_or_python(escape, host):
    for name, result in escape.items():
        if name.startswith("read "):
            assert not result["succeeded"], (name, result)
    assert escape["read /etc/passwd"]["detail"].startswith("FileNotFoundError")
    assert escape["read /home"]["detail"].startswith("FileNotFoundError")


def test_it_cannot_see_or_signal_the_farm_or_another_worker(escape):
    for name, result in escape.items():
        if name.startswith("kill "):
            assert not result["succeeded"], (name, result)
    assert not escape["see host pids"]["succeeded"], escape["see host pids"]
    assert all(escape["alive after"].values()), escape["alive after"]
    assert escape["farm answers"]


def test_it_has_no_network(escape):
    # a datagram to 127.0.0.1 is sent (bwrap brings up the sandbox's own lo) but never
    # arrives: the host's port, listening, got nothing
    assert escape["udp to the host's loopback"]["succeeded"] is True
    _all_failed(
        escape,
        (
            "tcp to the host's loopback",
            "tcp to the internet",
            "abstract unix socket of the host",
            "network interfaces besides lo",
        ),
    )
    assert escape["host accepted tcp"] is False and escape["host got udp"] is False


def test_it_holds_no_privilege_inside_or_on_the_host(escape):
    assert escape["uid"] == [NOBODY] * 4
    inside, outside = escape["status"], escape["host status"]
    for status in (inside, outside):
        _no_capabilities(status)
        assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    host_uids = {int(u) for u in outside["Uid"].split() + outside["Gid"].split()}
    assert 0 not in host_uids  # the kernel uid, as the host sees it
    if privileged():  # the setpriv route: a real unprivileged kernel uid
        assert host_uids == {NOBODY}
    _all_failed(
        escape,
        (
            "setuid 0",
            "setgroups",
            "unshare a user namespace",
            "unshare a network namespace",
            "mount a tmpfs",
            "ptrace",
            "kernel keyring",
        ),
    )


def test_its_environment_holds_nothing_of_the_parent(escape, host):
    assert SECRET in os.environ.values()
    # bwrap's --chdir sets PWD; the farm adds the software GL threads (render_threads)
    # and where its shader cache is (shader_cache.py)
    cache_env = shader_cache.sandbox_parts("step", host.run_dir / "gl-cache")[1]
    assert escape["environ"] == {**BASE_ENV, "PWD": "/tmp", **host.config.render_env(), **cache_env}
    assert SECRET not in json.dumps(escape["environ"])
    init = escape["environ of the sandbox's init"]  # bwrap's own: root's, unreadable
    assert not init["succeeded"] and init["detail"].startswith("PermissionError"), init


def test_it_runs_under_the_workers_rlimits(escape, host):
    limits = worker_limits(host.config)
    text = escape["host limits"]

    def limit(name: str) -> str:
        line = next(line for line in text.splitlines() if line.startswith(name))
        return line[len(name) :].split()[0]

    assert limit("Max address space") == str(limits.address_space_mb << 20)
    assert limit("Max cpu time") == str(limits.cpu_s)
    assert limit("Max open files") == str(limits.open_files)
    assert limit("Max file size") == str(limits.file_size_mb << 20)
    assert limit("Max core file size") == "0"
    if privileged():
        assert limit("Max processes") == str(limits.processes)


def test_it_dies_with_its_bwrap_and_with_its_supervisor(host):
    proc = host.launch(_plan(then="sleep"))
    _report(proc)
    inner = _inner_pid(proc)
    os.kill(proc.pid, signal.SIGKILL)  # bwrap, its parent outside the namespace
    proc.wait()
    assert _wait_gone(inner)

    # a supervisor process SIGKILLed (no cleanup at all) takes its workers with it
    backends = {r: f"ipc://{host.run_dir / r / 'backend.sock'}" for r in ("step", "target")}
    code = (
        "import json, subprocess, sys, time\n"
        "from derender.farm.config import FarmConfig\n"
        "from derender.farm.supervisor import Supervisor\n"
        "from derender.farm.os_sandbox import sandboxed_pid\n"
        f"sup = Supervisor(FarmConfig(), {str(host.run_dir)!r}, "
        f"{backends!r})\n"
        "p, _ = sup.launcher.launch(['/bin/sleep', '600'], 0)\n"
        "while sandboxed_pid(p.pid) is None: time.sleep(0.02)\n"
        "print(sandboxed_pid(p.pid), flush=True)\n"
        "time.sleep(600)\n"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert supervisor.stdout is not None
    worker = int(supervisor.stdout.readline())
    assert _alive(worker)
    supervisor.kill()
    supervisor.wait()
    assert _wait_gone(worker)


def test_a_memory_bomb_hits_the_address_space_limit(host):
    limit_mb = worker_limits(host.config).address_space_mb
    assert limit_mb > 0  # on by default
    proc = host.launch(_plan(allocate_mb=[256, limit_mb]))
    report = _report(proc)
    proc.wait(timeout=60)
    assert report["allocate 256 MiB"]["succeeded"], report["allocate 256 MiB"]
    bomb = report[f"allocate {limit_mb} MiB"]
    assert not bomb["succeeded"] and bomb["detail"].startswith("MemoryError"), bomb


def test_a_cpu_spin_hits_the_cpu_limit():
    h = Host(rlimit_cpu_s=2)
    try:
        t0 = time.monotonic()
        proc = h.launch(_plan(then="spin"))
        _report(proc)
        status = proc.wait(timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        h.close()
    # bwrap exits 128 + the signal that killed it: SIGKILL at the hard limit (SIGXCPU soft)
    assert status in (128 + signal.SIGKILL, 128 + signal.SIGXCPU), status
    assert elapsed >= 2.0


def test_the_user_namespace_route_confines_too(tmp_path):
    """The route a supervisor that is not root takes: bwrap makes a user namespace."""
    from derender.farm.os_sandbox import SandboxSpec, bwrap_argv
    from derender.farm.seccomp import seccomp_fd

    if not privileged():  # then the farm tests above already took this route
        pytest.skip("this machine runs as non-root: the route is covered by the farm tests")
    python = "/usr/bin/python3"  # readable by uid 65534, unlike this root-only venv
    assert os.access(python, os.X_OK), "this test needs a system python3"
    fd = seccomp_fd()
    argv = bwrap_argv(
        [python, "-I", "-c", PROBE, json.dumps(_plan(read=["/etc/passwd"]))],
        SandboxSpec(readable=()),
        fd,
        as_root=False,
    )
    assert "--unshare-user" in argv and "--disable-userns" in argv and "setpriv" not in str(argv)
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    try:
        out = subprocess.run(
            drop + argv, capture_output=True, text=True, pass_fds=(fd,), timeout=60
        )
    finally:
        os.close(fd)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["uid"] == [NOBODY] * 4
    _no_capabilities(report["status"])
    _all_failed(
        report,
        ("unshare a user namespace", "tcp to the internet", "read /etc/passwd", "kernel keyring"),
    )
