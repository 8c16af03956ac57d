"""The farm's GL shader cache: written by target workers only, copied by step workers.

Under software GL (Mesa llvmpipe) a Blender worker compiles its shaders to machine code
at start: about 2 s of a 4.4 s start on a 2-CPU host (``derender bench os-sandbox``).
Mesa keeps them in a disk cache that it finds through the passwd entry, which a
sandboxed worker (uid 65534, no passwd, a private tmpfs) does not have, so every start,
every recycle included, compiled them all again.

A cache that step workers could write would be a channel from one worker to the next
ones (and llvmpipe's entries are machine code). So the farm has one cache directory per
run (``run_dir/gl-cache``, gone with the farm): target workers, which never run a script,
mount it read-write and fill it; step workers mount it read-only at :data:`SEED` and,
before Blender starts, copy it into their own tmpfs (:func:`seed`), where Mesa may add to
the copy; nothing they write leaves their sandbox. Mesa 22.3 cannot use a read-only
cache in place (it opens its index read-write), hence the copy. SVG workers render no GL.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from .jobs import STEP, TARGET
from .os_sandbox import NOBODY, Mount, privileged

log = logging.getLogger(__name__)

SHARED = "/gl-cache"  # a target worker's read-write mount of the farm's cache
SEED = "/gl-seed"  # a step worker's read-only mount of it
OWN = "/tmp/gl-cache"  # a step worker's private copy, in its tmpfs
SEED_ENV = "DERENDER_GL_CACHE_SEED"
# Mesa's own default is 1 GB; a Workbench farm's cache is ~5 MB. The bound keeps the host's
# run dir, and each step worker's copy of it in a 512 MiB tmpfs, small whatever scenes
# clients send to the target workers.
MAX_SIZE = "256M"


def make_dir(run_dir: Path) -> Path:
    """The farm's cache directory, writable by the sandbox's uid."""
    path = run_dir / "gl-cache"
    path.mkdir(mode=0o755, exist_ok=True)
    if privileged():  # bwrap as root: workers run as 65534 on the host too
        os.chown(path, NOBODY, NOBODY)
    return path


def sandbox_parts(role: str, cache_dir: Path) -> tuple[tuple[Mount, ...], dict[str, str]]:
    """The mounts and environment a worker of ``role`` gets for the cache."""
    if role == TARGET:
        env = {"MESA_SHADER_CACHE_DIR": SHARED, "MESA_SHADER_CACHE_MAX_SIZE": MAX_SIZE}
        return (Mount("--bind", SHARED, str(cache_dir)),), env
    if role == STEP:
        mounts = (Mount("--ro-bind", SEED, str(cache_dir)),)
        return mounts, {"MESA_SHADER_CACHE_DIR": OWN, SEED_ENV: SEED}
    return (), {}


def seed() -> None:
    """In a step worker, before Blender starts: copy the read-only cache into its own
    directory (nothing to do where the environment names none). A copy cut short (a
    target worker was writing) only means fewer cached shaders."""
    source, own = os.environ.get(SEED_ENV), os.environ.get("MESA_SHADER_CACHE_DIR")
    if not source or not own or not os.path.isdir(source):
        return
    try:
        shutil.copytree(source, own, dirs_exist_ok=True)
    except OSError as exc:  # shutil.Error too: a file renamed or removed while copied
        log.info("the shader cache was copied in part: %s", exc)
