"""The seccomp filter of a sandboxed worker, as the raw BPF program bwrap's ``--seccomp`` loads.

Capabilities are gone already (see :mod:`.os_sandbox`); this filter closes what an
unprivileged process could still reach and a renderer never uses:

- new user namespaces (``clone``/``unshare`` with ``CLONE_NEWUSER``): inside one a process
  holds every capability over it, the usual first step of a kernel exploit. The non-root
  route also sets ``--disable-userns``; the root route has only this. ``clone3`` passes its
  flags in memory a filter cannot read, so it fails with ENOSYS and glibc falls back to
  ``clone``, which is checked;
- the kernel keyring (``add_key``, ``keyctl``, ``request_key``: not namespaced, shared by
  every process of uid 65534), ``bpf``, ``perf_event_open``, ``userfaultfd``, io_uring,
  ``ptrace`` and ``process_vm_*``, ``setns``, ``open_by_handle_at`` and the mount calls;
- any other syscall ABI (i386, x32): the process is killed, so the numbers below cannot be
  dodged by switching tables.

Everything else is allowed. Refused calls fail with EPERM, so code that probes for them
(glibc, Python) sees an ordinary error.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

CLONE_NEWUSER = 0x10000000
_X32_BIT = 0x40000000

# BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
# Offsets in struct seccomp_data: nr, arch, ip, args[6] (the low half of args[0] on LE).
_NR, _ARCH, _ARG0 = 0, 4, 16

# Refused with EPERM; clone and unshare only with CLONE_NEWUSER; clone3 with ENOSYS.
_DENIED = (
    "add_key keyctl request_key bpf perf_event_open userfaultfd io_uring_setup "
    "io_uring_enter io_uring_register ptrace process_vm_readv process_vm_writev setns "
    "open_by_handle_at mount umount2 pivot_root chroot"
).split()
_NAMES = (*_DENIED, "clone", "unshare", "clone3")
# machine -> (AUDIT_ARCH_*, its syscall numbers of _NAMES in order)
_TABLES: dict[str, tuple[int, str]] = {
    "x86_64": (
        0xC000003E,
        "248 250 249 321 298 323 425 426 427 101 310 311 308 304 165 166 155 161 56 272 435",
    ),
    "aarch64": (
        0xC00000B7,
        "217 219 218 280 241 282 425 426 427 117 270 271 268 265 40 39 41 51 220 97 435",
    ),
}


class SeccompUnsupported(RuntimeError):
    """No syscall table for this machine's architecture (the value says which)."""


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes:
    """The BPF program (``struct sock_filter[]``) for ``machine`` (default: this one)."""
    machine = machine or platform.machine()
    if machine not in _TABLES:
        raise SeccompUnsupported(
            f"no seccomp syscall table for architecture {machine!r} (have {sorted(_TABLES)})"
        )
    arch, table = _TABLES[machine]
    numbers = dict(zip(_NAMES, map(int, table.split()), strict=True))
    eperm = _ERRNO | errno.EPERM
    prog = [_op(_LD_ABS, _ARCH), _op(_JEQ, arch, 1, 0), _op(_RET, _KILL_PROCESS)]
    prog.append(_op(_LD_ABS, _NR))
    if machine == "x86_64":
        prog += [_op(_JGE, _X32_BIT, 0, 1), _op(_RET, _KILL_PROCESS)]
    for name in _DENIED:
        prog += [_op(_JEQ, numbers[name], 0, 1), _op(_RET, eperm)]
    prog += [_op(_JEQ, numbers["clone3"], 0, 1), _op(_RET, _ERRNO | errno.ENOSYS)]
    for name in ("clone", "unshare"):  # refused only with CLONE_NEWUSER in the flags
        prog += [
            _op(_JEQ, numbers[name], 0, 4),
            _op(_LD_ABS, _ARG0),
            _op(_JSET, CLONE_NEWUSER, 0, 1),
            _op(_RET, eperm),
            _op(_RET, _ALLOW),
        ]
    prog.append(_op(_RET, _ALLOW))
    return b"".join(prog)


def seccomp_fd() -> int:
    """A fresh fd, at offset 0, holding :func:`filter_program`, for ``bwrap --seccomp``.

    bwrap reads it to the end, so every sandbox needs its own; the caller closes it
    once the child has started."""
    fd = os.memfd_create("derender-seccomp")  # the child gets it through pass_fds
    os.write(fd, filter_program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
