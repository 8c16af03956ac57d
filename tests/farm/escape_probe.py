"""TEST-ONLY: raw, unrestricted Python that tries to get out of the OS sandbox.

The tests run this source as ``python -I -c SOURCE PLAN`` inside the real sandbox (the
supervisor's own ``launch``, as a worker is started), so it stands for agent code that
escaped the language layer. ``PLAN`` is JSON: paths to write and read, host pids to
signal, a TCP/UDP port and an abstract unix socket the test listens on. It prints one
JSON object: for every attempt, whether it succeeded and what happened. Nothing here is
imported by product code. Every attempt is written to be harmless where it succeeds, so
that a broken sandbox fails the tests without damaging the machine that runs them.
"""

import ctypes
import json
import os
import signal
import socket
import sys
import tempfile

plan = json.loads(sys.argv[1])
report: dict = {"uid": [os.getuid(), os.geteuid(), os.getgid(), os.getegid()]}


def attempt(name, fn):
    try:
        report[name] = {"succeeded": True, "detail": repr(fn())[:300]}
    except BaseException as exc:  # every failure is the answer, whatever its type
        report[name] = {"succeeded": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}


def write(path):
    with open(path, "w") as fh:
        fh.write("escaped")
    return path


def read(path):
    if os.path.isdir(path):
        return os.listdir(path)
    with open(path, "rb") as fh:
        return fh.read(200)


for path in plan["write"]:
    attempt(f"write {path}", lambda p=path: write(p))
for path in plan["read"]:
    attempt(f"read {path}", lambda p=path: read(p))
# Signal 0 makes the kernel check existence and permission exactly as for SIGKILL, and
# sends nothing: were the sandbox ever broken, this test must not take the host down
# (kill(-1, SIGKILL) as root outside a PID namespace kills every process on the machine).
for pid in plan["pids"]:
    attempt(f"kill {pid}", lambda p=pid: os.kill(p, 0))
attempt("kill -1", lambda: os.kill(-1, 0))
attempt("see host pids", lambda: [p for p in plan["pids"] if os.path.exists(f"/proc/{p}")] or 1 / 0)


def tcp():
    with socket.create_connection(("127.0.0.1", plan["port"]), timeout=2) as s:
        return s.getpeername()


def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return s.sendto(b"escaped", ("127.0.0.1", plan["port"]))


def tcp_out():
    with socket.create_connection(("1.1.1.1", 53), timeout=2) as s:
        return s.getpeername()


def abstract_unix():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect("\0" + plan["abstract"])
        return "connected"


def interfaces():
    with open("/proc/net/dev") as fh:
        names = [line.split(":")[0].strip() for line in fh.readlines()[2:]]
    return [n for n in names if n != "lo"] or 1 / 0


attempt("tcp to the host's loopback", tcp)
attempt("udp to the host's loopback", udp)
attempt("tcp to the internet", tcp_out)
attempt("abstract unix socket of the host", abstract_unix)
attempt("network interfaces besides lo", interfaces)
attempt("netlink socket", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close())

libc = ctypes.CDLL(None, use_errno=True)


def syscall_ok(ret):
    if ret != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return ret


CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
attempt("setuid 0", lambda: os.setuid(0))
attempt("setgroups", lambda: os.setgroups([0]))
attempt("unshare a user namespace", lambda: syscall_ok(libc.unshare(CLONE_NEWUSER)))
attempt("unshare a network namespace", lambda: syscall_ok(libc.unshare(CLONE_NEWNET)))


def mount():  # on a fresh dir, and undone: harmless even where it succeeds
    target = tempfile.mkdtemp().encode()
    syscall_ok(libc.mount(b"none", target, b"tmpfs", 0, None))
    libc.umount2(target, 0)
    return target


attempt("mount a tmpfs", mount)
attempt("ptrace", lambda: syscall_ok(libc.ptrace(0, 0, None, None)))  # PTRACE_TRACEME
if os.uname().machine == "x86_64":  # keyctl(KEYCTL_GET_KEYRING_ID, session keyring)
    attempt("kernel keyring", lambda: syscall_ok(libc.syscall(250, 0, -3, 0, 0, 0)))
with open("/proc/self/status") as fh:
    report["status"] = dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
report["environ"] = dict(os.environ)
attempt("environ of the sandbox's init", lambda: read("/proc/1/environ"))
for mb in plan.get("allocate_mb", ()):
    attempt(f"allocate {mb} MiB", lambda mb=mb: len(bytearray(mb << 20)))
print(json.dumps(report), flush=True)
if plan.get("then") == "sleep":
    signal.pause()
elif plan.get("then") == "spin":
    while True:
        pass
