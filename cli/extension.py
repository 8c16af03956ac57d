"""``derender extension build|validate|install``: package the repository as a Blender extension.

The zip is built and validated by Blender's own extension tool (``blender_ext.py``, shipped
inside the pip ``bpy`` module), so what passes here is what Blender accepts. The wheels the
manifest names are downloaded into ``wheels/`` at build time; they are never committed.
Installing goes through ``bpy.ops.extensions.package_install_files`` in a child process,
so an alternative user directory (``--user-resources``) is set before Blender starts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "blender_manifest.toml"
# Blender 4.2 to 5.0 embed CPython 3.11; wheels are fetched for that interpreter.
BLENDER_PYTHON = "3.11"


class ExtensionError(RuntimeError):
    """Building, validating or installing the extension failed; the message says where."""


@dataclass(frozen=True)
class Wheel:
    """One wheel the manifest names, split per the wheel file-name spec."""

    path: str  # as written in the manifest, relative to the source root
    name: str
    version: str
    platforms: tuple[str, ...]  # ("any",) for pure-Python wheels

    @classmethod
    def parse(cls, path: str) -> Wheel:
        parts = Path(path).name.removesuffix(".whl").split("-")
        if len(parts) not in (5, 6) or not path.endswith(".whl"):
            raise ExtensionError(f"manifest wheel {path!r} does not follow the wheel name spec")
        return cls(path, parts[0], parts[1], tuple(parts[-1].split(".")))

    def pip_download_args(self, dest: Path) -> list[str]:
        """pip arguments that fetch exactly this file for Blender's Python."""
        args = ["download", "--only-binary=:all:", "--no-deps", "--quiet", "-d", str(dest)]
        args += ["--python-version", BLENDER_PYTHON]
        if self.platforms != ("any",):
            for tag in self.platforms:
                args += ["--platform", tag]
        return [*args, f"{self.name}=={self.version}"]


def blender_ext_path() -> Path:
    """Locate ``blender_ext.py`` inside the installed ``bpy`` module without importing bpy."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError("the bpy module is not installed; pip install derender[blender]")
    for base in spec.submodule_search_locations:
        found = sorted(Path(base).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    raise ExtensionError(f"blender_ext.py not found under {list(spec.submodule_search_locations)}")


def read_manifest(root: Path = ROOT) -> dict:
    path = root / MANIFEST
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ExtensionError(f"cannot read {path}: {exc}") from exc


def manifest_wheels(root: Path = ROOT) -> list[Wheel]:
    return [Wheel.parse(p) for p in read_manifest(root).get("wheels", [])]


def fetch_wheels(root: Path = ROOT) -> list[Path]:
    """Download every manifest wheel missing from ``root``; return all their paths."""
    paths = []
    for wheel in manifest_wheels(root):
        target = (root / wheel.path).resolve()
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "pip", *wheel.pip_download_args(target.parent)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 or not target.is_file():
                raise ExtensionError(
                    f"could not download {target.name}: {(proc.stderr or proc.stdout).strip()}"
                )
        paths.append(target)
    return paths


def _blender_ext(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(blender_ext_path()), *args], capture_output=True, text=True
    )
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or "FATAL_ERROR" in out or "ERROR:" in out:
        raise ExtensionError(f"blender_ext {args[0]} failed: {out}")
    return out


def validate(path: Path) -> str:
    """Validate a source directory or a built zip with Blender's validator."""
    return _blender_ext("validate", str(path))


def build(out_dir: Path, root: Path = ROOT, split_platforms: bool = False) -> list[Path]:
    """Fetch wheels, build the extension zip(s) into ``out_dir`` and validate each one."""
    fetch_wheels(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    before = {p: p.stat().st_mtime_ns for p in out_dir.glob("*.zip")}
    args = ["build", "--source-dir", str(root), "--output-dir", str(out_dir)]
    _blender_ext(*args, *(["--split-platforms"] if split_platforms else []))
    manifest = read_manifest(root)
    prefix = f"{manifest['id']}-{manifest['version']}"
    zips = sorted(
        p for p in out_dir.glob(f"{prefix}*.zip") if before.get(p) != p.stat().st_mtime_ns
    )
    if not zips:
        raise ExtensionError(f"blender_ext build wrote no {prefix}*.zip into {out_dir}")
    for z in zips:
        validate(z)
    return zips


# Runs inside a fresh Blender (the bpy module) so that BLENDER_USER_RESOURCES applies.
_INSTALL_SCRIPT = """
import json, sys
import bpy
import addon_utils  # importable only once bpy is
zip_path, repo, enable = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
res = bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo=repo, enable_on_install=enable)
module = "bl_ext." + repo + ".derender"
enabled = addon_utils.check(module)[1]
if enable:
    bpy.ops.wm.save_userpref()
print(json.dumps({"result": sorted(res), "module": module, "enabled": enabled}))
"""


def install(
    zip_path: Path,
    repo: str = "user_default",
    enable: bool = True,
    user_resources: Path | None = None,
) -> dict:
    """Install a built zip into a Blender user repository (and enable it, saving prefs)."""
    if not zip_path.is_file():
        raise ExtensionError(f"no extension zip at {zip_path}")
    env = dict(os.environ)
    if user_resources is not None:
        env["BLENDER_USER_RESOURCES"] = str(user_resources)
    cmd = [sys.executable, "-c", _INSTALL_SCRIPT, str(zip_path.resolve()), repo, str(int(enable))]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise ExtensionError(f"installing {zip_path} failed: {proc.stderr.strip()[-2000:]}")
    report = json.loads(lines[-1])
    if report["result"] != ["FINISHED"] or (enable and not report["enabled"]):
        raise ExtensionError(f"installing {zip_path} failed: {report} {proc.stdout[-2000:]}")
    return report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extension", help="build, validate or install the Blender extension")
    cmds = p.add_subparsers(dest="extension_command", metavar="ACTION", required=True)
    b = cmds.add_parser("build", help="download wheels, build and validate the extension zip")
    b.add_argument("--out", type=Path, default=Path("dist"), help="output directory (dist)")
    b.add_argument("--split-platforms", action="store_true", help="one zip per platform")
    b.set_defaults(func=_run_build)
    v = cmds.add_parser("validate", help="validate the source tree or a built zip")
    v.add_argument("path", type=Path, nargs="?", default=ROOT, help="directory or zip")
    v.set_defaults(func=_run_validate)
    i = cmds.add_parser("install", help="install a built zip into Blender's user extensions")
    i.add_argument("zip", type=Path, help="the built extension zip")
    i.add_argument("--repo", default="user_default", help="extension repository (user_default)")
    i.add_argument("--no-enable", action="store_true", help="install without enabling")
    i.add_argument(
        "--user-resources", type=Path, help="Blender user directory (BLENDER_USER_RESOURCES)"
    )
    i.set_defaults(func=_run_install)


def _report(action: str, fn) -> int:
    try:
        fn()
    except ExtensionError as exc:
        print(f"derender extension {action}: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_build(args: argparse.Namespace) -> int:
    def go() -> None:
        for z in build(args.out, split_platforms=args.split_platforms):
            print(f"built and validated {z} ({z.stat().st_size} bytes)")

    return _report("build", go)


def _run_validate(args: argparse.Namespace) -> int:
    return _report("validate", lambda: print(validate(args.path)))


def _run_install(args: argparse.Namespace) -> int:
    def go() -> None:
        report = install(args.zip, args.repo, not args.no_enable, args.user_resources)
        print(f"installed {args.zip} as {report['module']} (enabled: {report['enabled']})")

    return _report("install", go)
