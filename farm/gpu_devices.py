"""The device mounts that give a sandboxed worker one NVIDIA GPU and nothing of the others.

The sandbox's ``/dev`` is empty of devices (:mod:`.os_sandbox`). A worker pinned to GPU
``N`` (``FarmConfig.gpus``; ``N`` counts GPUs in PCI bus order, as ``nvidia-smi`` does)
gets bound in:

- ``/dev/nvidiaM``, where M is the GPU's "Device Minor" in
  ``/proc/driver/nvidia/gpus/<bus id>/information``, plus the control nodes every CUDA or
  EGL client opens (``nvidiactl``, ``nvidia-uvm``, ``nvidia-uvm-tools``, ``nvidia-modeset``);
- the GPU's DRM render node ``/dev/dri/renderD*``: the one whose
  ``/sys/class/drm/renderD*/device`` links to the GPU's PCI device;
- read-only, the sysfs entries EGL and libdrm walk to find that node (the PCI device's
  directory and the symlinks to it) and, over a tmpfs that hides the other GPUs, the
  GPU's own ``/proc/driver/nvidia/gpus/<bus id>``.

``/usr/share/{egl,glvnd,vulkan}`` come with ``/usr``; ``/etc/glvnd`` and ``/etc/vulkan``
are bound for every worker (:data:`.os_sandbox.ETC_FILES`). CUDA inside enumerates the
device nodes it can open, so the GPU is device 0 there. Not verified on a GPU machine
(none was available when this was written): the tests check the mounts against a fake
``/dev``, ``/sys`` and ``/proc`` tree.
"""

from __future__ import annotations

import os
from pathlib import Path

from .os_sandbox import Mount, SandboxConfigError

CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
_GPUS = "proc/driver/nvidia/gpus"


class GPUNotFound(SandboxConfigError):
    """The GPU a worker is pinned to is not on this machine (the message lists those that are)."""


def _minor(information: Path) -> int:
    for line in information.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Device Minor":
            return int(value)
    raise GPUNotFound(f"{information} has no 'Device Minor' line")


def gpu_mounts(gpu: int, host: Path = Path("/")) -> tuple[Mount, ...]:
    """The mounts that give a sandbox GPU ``gpu`` only; ``host`` is the root to read.

    Sources are read under ``host`` (a test passes a fake tree); destinations are the
    real paths. Raises :class:`GPUNotFound` for a GPU that is not there."""
    buses = sorted(p.name for p in (host / _GPUS).glob("*")) if (host / _GPUS).is_dir() else []
    if not 0 <= gpu < len(buses):
        raise GPUNotFound(f"GPU {gpu} is not on this machine: NVIDIA GPUs by bus id {buses}")
    bus = buses[gpu]
    mounts = [Mount("--dev-bind", f"/dev/nvidia{_minor(host / _GPUS / bus / 'information')}")]
    mounts += [
        Mount("--dev-bind", f"/dev/{n}") for n in CONTROL_NODES if (host / "dev" / n).exists()
    ]
    sysfs: list[Mount] = []
    for node in sorted((host / "sys/class/drm").glob("renderD*")):
        device = node / "device"
        if device.exists() and device.resolve().name.lower() == bus.lower():
            mounts.append(Mount("--dev-bind", f"/dev/dri/{node.name}"))
            pci = "/" / device.resolve().relative_to(host.resolve())
            sysfs.append(Mount("--ro-bind", str(pci)))
            sysfs.append(Mount("--symlink", f"/sys/class/drm/{node.name}", os.readlink(node)))
            char = host / "sys/dev/char" / (node / "dev").read_text().strip()
            if char.is_symlink():
                sysfs.append(
                    Mount("--symlink", "/" + str(char.relative_to(host)), os.readlink(char))
                )
            break
    else:
        raise GPUNotFound(f"GPU {gpu} (bus {bus}) has no DRM render node in /sys/class/drm")
    proc = [Mount("--tmpfs", f"/{_GPUS}"), Mount("--ro-bind", f"/{_GPUS}/{bus}")]
    return tuple(_from(host, m) for m in [*mounts, *sysfs, *proc])


def _from(host: Path, mount: Mount) -> Mount:
    """``mount`` with its source read under ``host`` (binds only: a symlink's is its target)."""
    if mount.op not in ("--dev-bind", "--ro-bind"):
        return mount
    return Mount(mount.op, mount.dest, str(host / mount.dest.lstrip("/")))
