"""The Blender extension: manifest, build and validation with Blender's own tool, install.

The zip is built once per module (wheels are downloaded into wheels/ on first use). The
install test puts it into a throw-away Blender user directory (BLENDER_USER_RESOURCES), so
~/.config is never touched, and drives it from fresh processes: one installs and enables
(saving preferences), the next loads those preferences, finds the extension enabled as
``bl_ext.user_default.derender`` from the installed copy, starts its server, and this test
process completes a reset and a step over ZeroMQ with the protocol client.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import derender
import numpy as np
import pytest
from derender.cli import extension as extension_cli
from derender.cli.extension import ROOT, ExtensionError, Wheel
from derender.scenes import dsl_program

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return tomllib.loads((ROOT / "blender_manifest.toml").read_text())


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    (zip_path,) = extension_cli.build(tmp_path_factory.mktemp("dist"))
    return zip_path


def _blender_ext_module():
    spec = importlib.util.spec_from_file_location("blender_ext", extension_cli.blender_ext_path())
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_manifest_agrees_with_pyproject(manifest):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["id"] == project["name"] == "derender"
    assert manifest["version"] == project["version"] == derender.__version__
    assert manifest["license"] == [f"SPDX:{project['license']}"] == ["SPDX:GPL-3.0-or-later"]
    assert tuple(int(x) for x in manifest["blender_version_min"].split(".")) >= (4, 2, 0)
    assert set(manifest["permissions"]) == {"network", "files"}
    assert "ZeroMQ" in manifest["permissions"]["network"]


def test_manifest_wheels_are_the_tested_versions_for_every_platform(manifest):
    wheels = [Wheel.parse(p) for p in manifest["wheels"]]
    # The extension ships exactly the versions this environment's tests ran against.
    for w in wheels:
        assert importlib.metadata.version(w.name) == w.version, w.path
    blender_ext = _blender_ext_module()
    for platform in manifest["platforms"]:
        names = {
            w.name
            for w in wheels
            if blender_ext.blender_platform_compatible_with_wheel_platform_from_filepath(
                platform, w.path
            )
        }
        assert names == {"pyzmq", "pillow", "threadpoolctl"}, platform
    versions = blender_ext.python_versions_from_wheels(manifest["wheels"])
    assert versions == {(3, 11)}  # Blender 4.2 to 5.0 run CPython 3.11


def test_wheel_parse_rejects_non_wheel_names():
    with pytest.raises(ExtensionError, match=r"not-a-wheel\.zip"):
        Wheel.parse("./wheels/not-a-wheel.zip")
    w = Wheel.parse("./wheels/pyzmq-27.3.0-cp311-cp311-win_amd64.whl")
    args = w.pip_download_args(Path("/tmp/x"))
    assert args[-1] == "pyzmq==27.3.0" and args[args.index("--platform") + 1] == "win_amd64"


def test_built_zip_holds_the_package_and_wheels_only(built_zip, manifest):
    names = set(zipfile.ZipFile(built_zip).namelist())
    for required in (
        "blender_manifest.toml",
        "__init__.py",
        "addon/registration.py",
        "addon/ui.py",
        "addon/operators.py",
        "addon/service.py",
        "scenes/frame.py",
        "farm/core.py",
        "reward/__init__.py",
        "farm/local.py",  # the GUI's server is a local farm
        "addon/worker.py",
    ):
        assert required in names
    assert {w.lstrip("./") for w in manifest["wheels"]} <= names
    excluded = ("tests/", "bench/", ".venv", ".git", "dist/", "__pycache__")
    assert not [n for n in names if n.startswith(excluded) or "/__pycache__/" in n]
    assert not names & {"Makefile", "pyproject.toml", "constraints.txt", ".gitignore"}
    # Blender's validator accepts it (build() validated it too; this is the CLI path).
    out = subprocess.run(
        [sys.executable, "-m", "derender.cli", "extension", "validate", str(built_zip)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


def test_validate_rejects_a_bad_manifest(tmp_path, manifest):
    text = (ROOT / "blender_manifest.toml").read_text()
    (tmp_path / "blender_manifest.toml").write_text(
        text.replace(f'version = "{manifest["version"]}"', 'version = "not-semver"', 1)
    )
    out = subprocess.run(
        [sys.executable, "-m", "derender.cli", "extension", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "not-semver" in out.stderr


def test_install_cli_reports_a_missing_zip(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "derender.cli",
            "extension",
            "install",
            str(tmp_path / "no.zip"),
            "--user-resources",
            str(tmp_path / "user"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert f"no extension zip at {tmp_path / 'no.zip'}" in out.stderr
    assert not (tmp_path / "user").exists()


# Runs in a fresh Blender whose user directory holds the installed, enabled extension.
_SERVE = """
import json, sys, time
import bpy
import addon_utils

bpy.ops.wm.read_userpref()  # the bpy module enables saved add-ons only on this read
name = "bl_ext.user_default.derender"
import zmq
print(json.dumps({"enabled": addon_utils.check(name)[1], "file": sys.modules[name].__file__,
                  "zmq": zmq.__file__, "torch": "torch" in sys.modules}), flush=True)
bpy.context.preferences.addons[name].preferences.port = 0  # any free port
props = bpy.context.scene.derender
props.engine, props.width, props.height, props.samples = "workbench", 64, 64, 8
assert bpy.ops.derender.server_start() == {"FINISHED"}
session = sys.modules[name + ".addon.session"]
server = session.SESSION.server
print("READY " + server.endpoints[0], flush=True)
deadline = time.time() + 120
while server.handled < 2 and time.time() < deadline:  # what the GUI's timer does
    session.server_tick()
    time.sleep(0.05)
assert bpy.ops.derender.server_stop() == {"FINISHED"}
print("SERVED", server.handled, flush=True)
"""


def _line(proc: subprocess.Popen, prefix: str) -> str:
    # Blender and the operators' reports write to stdout too: skip to the line we want.
    for line in proc.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no {prefix!r} line; stderr: {proc.stderr.read()[-3000:]}")


def test_zip_installs_enables_and_serves_a_step(built_zip, tmp_path):
    from derender.protocol.client import Client

    user = tmp_path / "blender-user"
    report = extension_cli.install(built_zip, user_resources=user)
    assert report == {
        "result": ["FINISHED"],
        "module": "bl_ext.user_default.derender",
        "enabled": True,
    }
    installed = user / "extensions" / "user_default" / "derender"
    assert (installed / "addon" / "operators.py").is_file()
    assert not (installed / "tests").exists()

    env = {**os.environ, "BLENDER_USER_RESOURCES": str(user)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        loaded = json.loads(_line(proc, "{"))
        assert loaded["enabled"]
        assert not loaded["torch"]  # Blender has no torch: enabling must not need it
        assert Path(loaded["file"]).is_relative_to(installed)  # not the source tree
        assert Path(loaded["zmq"]).is_relative_to(user / "extensions")  # the shipped wheel
        ready = _line(proc, "READY ")
        assert ready.startswith("READY tcp://127.0.0.1:"), ready
        with Client(ready.split()[1], timeout=120) as client:
            target = client.reset(seed=3)
            assert target.image.shape == (64, 64, 3)
            # The ground-truth program: the step must reproduce the target's pixels.
            result = client.step(dsl_program(target.scene) + "print('hi')", target)
        assert result.target_id == target.target_id
        assert (result.outcome, result.stdout.strip()) == ("ok", "hi"), result.message
        diff = np.abs(result.image.astype(int) - target.image.astype(int))
        assert diff.mean() < 1.0
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "SERVED 2" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shutil.rmtree(user, ignore_errors=True)
