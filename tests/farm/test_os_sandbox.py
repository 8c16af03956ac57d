"""The OS sandbox's parts: bwrap command lines, what is bound, limits, sockets, GPU mounts,
and what a farm does when bwrap is missing or turned off."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from derender import Client
from derender.farm.config import FarmConfig
from derender.farm.gpu_devices import CONTROL_NODES, GPUNotFound, gpu_mounts
from derender.farm.launcher import BackendNotReachable, worker_limits
from derender.farm.local import LocalFarm
from derender.farm.os_sandbox import (
    BASE_ENV,
    NOBODY,
    SETPRIV,
    SandboxSpec,
    SocketDirNotPrivate,
    bwrap_argv,
    confinement_gaps,
    runtime_tree,
    share_socket_dir,
)
from derender.farm.seccomp import SeccompUnsupported, filter_program
from derender.farm.supervisor import Supervisor
from derender.protocol.errors import ProtocolError
from derender.scenes import dsl_program

REPO = Path(__file__).resolve().parents[2]


def _pairs(argv: list[str], op: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == op]


def _bound(argv: list[str]) -> set[str]:
    return {dest for op in ("--ro-bind", "--bind", "--dev-bind") for _, dest in _pairs(argv, op)}


def _socket_dir(tmp_path: Path) -> Path:
    (tmp_path / "workers").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "workers" / "backend.sock"))
    sock.close()  # the file stays, as zmq's does
    return tmp_path / "workers"


def test_the_root_route_drops_to_65534_with_setpriv_and_no_user_namespace(tmp_path):
    spec = SandboxSpec(runtime_tree(), (_socket_dir(tmp_path),))
    argv = bwrap_argv(["python", "-c", "pass"], spec, seccomp_fd=7, as_root=True)
    for flag in ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"):
        assert flag in argv
    for flag in ("--die-with-parent", "--new-session", "--clearenv"):
        assert flag in argv
    assert "--unshare-user" not in argv and "--unshare-all" not in argv  # 65534 would be 0
    caps = [argv[i + 1] for i, a in enumerate(argv) if a == "--cap-add"]
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert caps == ["CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"]
    tail = argv[argv.index(SETPRIV) :]
    assert tail[1:9] == [
        f"--reuid={NOBODY}",
        f"--regid={NOBODY}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
        "python",
    ]
    assert argv[argv.index("--seccomp") + 1] == "7"
    assert argv.index("--remount-ro") < argv.index(SETPRIV)


def test_the_user_namespace_route_maps_65534_and_disables_further_namespaces():
    argv = bwrap_argv(["python"], SandboxSpec(()), as_root=False)
    i = argv.index("--unshare-user")
    assert argv[i : i + 5] == ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    assert "--disable-userns" in argv and "--cap-add" not in argv and SETPRIV not in argv
    assert argv[argv.index("--") + 1 :] == ["python"]


def test_only_python_blender_and_the_package_modules_are_bound(tmp_path):
    socket_dir = _socket_dir(tmp_path)
    argv = bwrap_argv(["python"], SandboxSpec(runtime_tree(), (socket_dir,)), as_root=True)
    bound = _bound(argv)
    assert {sys.base_prefix, str(Path(sys.prefix) / "pyvenv.cfg")} <= bound
    assert any(p.endswith("site-packages") for p in bound)
    assert {str(REPO / "farm"), str(REPO / "addon"), str(REPO / "__init__.py")} <= bound
    for secret in ("tests", ".git", "pyproject.toml", "README.md", ".venv"):
        assert str(REPO / secret) not in bound
    assert str(REPO) not in bound and "/" not in bound and "/etc" not in bound
    assert "/etc/ld.so.cache" in bound and "/etc/passwd" not in bound
    assert (str(socket_dir), str(socket_dir)) in _pairs(argv, "--ro-bind")  # read-only
    assert str(tmp_path) not in bound  # the run dir itself stays out
    tmpfs = [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]
    assert tmpfs == ["/tmp", "/dev/shm"]
    for i, a in enumerate(argv):
        if a == "--tmpfs":
            assert argv[i - 4 : i] == ["--perms", "1777", "--size", str(512 << 20)]
    # every directory bwrap makes on the way is walkable by uid 65534
    made = [argv[i + 1] for i, a in enumerate(argv) if a == "--dir"]
    assert "/root" in made or not sys.base_prefix.startswith("/root")
    assert all(argv[argv.index(d) - 2 : argv.index(d) - 1] == ["0755"] for d in made)


def test_a_blender_binary_worker_runs_in_the_sandbox_with_its_install_dir(tmp_path):
    install = tmp_path / "blender-5.0"
    install.mkdir()
    fake = install / "blender"  # stands for Blender: prints what it was started with
    fake.write_text('#!/bin/sh\necho "$0|$1|$2|$3|$5"\nid -u\nenv\n')
    fake.chmod(0o755)
    socket_dir = _socket_dir(tmp_path)
    backend = f"ipc://{socket_dir / 'backend.sock'}"
    config = FarmConfig(blender=str(fake), render_threads=3)
    sup = Supervisor(config, tmp_path, {"step": backend, "target": backend})
    assert sup.os_sandboxed and install in sup.launcher.sandbox(0).readable
    command = sup.launcher.worker_command("s0-1", "step")
    assert command[:4] == [str(fake), "-b", "--factory-startup", "--python-expr"]
    assert "site.addsitedir(" in command[4] and command[5] == "--"
    proc, tmpdir = sup.launcher.launch(command, 0, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    assert tmpdir is None and proc.returncode == 0
    lines = out.decode().splitlines()
    assert lines[0] == f"{fake}|-b|--factory-startup|--python-expr|--"
    assert lines[1] == str(NOBODY)
    env = dict(line.split("=", 1) for line in lines[2:])
    assert env == {
        **BASE_ENV,
        "PWD": "/tmp",
        "LP_NUM_THREADS": "3",
        "MESA_SHADER_CACHE_DIR": "/tmp/gl-cache",
        "DERENDER_GL_CACHE_SEED": "/gl-seed",
    }


def test_a_socket_dir_is_shared_only_if_it_holds_nothing_but_sockets(tmp_path):
    socket_dir = _socket_dir(tmp_path)
    sock = socket_dir / "backend.sock"
    assert share_socket_dir(sock) == socket_dir
    assert socket_dir.stat().st_mode & 0o777 == 0o755 and sock.stat().st_mode & 0o777 == 0o666
    (socket_dir / "address").write_text("tcp://127.0.0.1:1")
    with pytest.raises(SocketDirNotPrivate, match=r"\['address'\]"):
        share_socket_dir(sock)


def test_sandboxed_local_workers_need_an_ipc_backend(tmp_path):
    with pytest.raises(BackendNotReachable, match=r"tcp://127\.0\.0\.1:7000"):
        Supervisor(FarmConfig(), tmp_path, {"step": "tcp://127.0.0.1:7000", "target": "x"})


def test_worker_limits_default_on_and_follow_the_config(monkeypatch):
    cpus = os.cpu_count() or 1
    default = worker_limits(FarmConfig(workers=3))
    assert default.address_space_mb == 4096 + 96 * cpus
    assert default.cpu_s == 120 + 60 * 500  # start_timeout + hard_deadline x recycle_every
    assert default.open_files == 1024 and default.file_size_mb == 512
    assert worker_limits(FarmConfig(recycle_every=0, hard_deadline=10)).cpu_s == 120 + 10 * 500
    assert worker_limits(FarmConfig(gpus=(0,))).address_space_mb == 0  # GPU drivers
    explicit = worker_limits(FarmConfig(rlimit_as_mb=0, rlimit_cpu_s=7, rlimit_nproc=99))
    assert (explicit.address_space_mb, explicit.cpu_s, explicit.processes) == (0, 7, 99)
    monkeypatch.setattr("derender.farm.launcher.privileged", lambda: True)
    assert worker_limits(FarmConfig(workers=3)).processes == 32 * (2 * cpus + 64)
    assert worker_limits(FarmConfig(workers=40)).processes == 40 * (2 * cpus + 64)
    monkeypatch.setattr("derender.farm.launcher.privileged", lambda: False)
    assert worker_limits(FarmConfig(workers=3)).processes == 0  # the caller's own uid


def test_this_unsandboxed_process_knows_it_is_not_confined():
    gaps = confinement_gaps()
    assert gaps and any("capabilities" in g or "uid 0" in g for g in gaps)
    assert any("writable" in g for g in gaps)


def test_the_seccomp_filter_is_built_for_known_machines_only():
    for machine in ("x86_64", "aarch64"):
        program = filter_program(machine)
        assert len(program) % 8 == 0 and 40 < len(program) // 8 < 255
    assert filter_program("x86_64") != filter_program("aarch64")
    with pytest.raises(SeccompUnsupported, match="riscv64"):
        filter_program("riscv64")


def _fake_gpu_host(root: Path) -> None:
    """Two GPUs whose minors and render nodes are both out of bus order."""
    gpus = {
        "0000:01:00.0": (1, "renderD129", "226:129"),
        "0000:41:00.0": (0, "renderD128", "226:128"),
    }
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-modeset"):
        (root / "dev").mkdir(exist_ok=True)
        (root / "dev" / name).write_text("")
    (root / "dev/dri").mkdir()
    for bus, (minor, render, dev) in gpus.items():
        info = root / "proc/driver/nvidia/gpus" / bus / "information"
        info.parent.mkdir(parents=True)
        info.write_text(f"Model: Fake GPU\nIRQ: 1\nDevice Minor: \t {minor}\nBus Type: PCIe\n")
        (root / "dev/dri" / render).write_text("")
        pci = root / "sys/devices/pci0000:00" / bus
        (pci / "drm" / render).mkdir(parents=True)
        (pci / "drm" / render / "dev").write_text(dev + "\n")
        drm = root / "sys/class/drm"
        drm.mkdir(parents=True, exist_ok=True)
        (drm / render).symlink_to(f"../../devices/pci0000:00/{bus}/drm/{render}")
        (pci / "drm" / render / "device").symlink_to("../..")
        char = root / "sys/dev/char"
        char.mkdir(parents=True, exist_ok=True)
        (char / dev).symlink_to(f"../../devices/pci0000:00/{bus}/drm/{render}")


def test_a_pinned_gpu_gets_its_own_device_nodes_only(tmp_path):
    _fake_gpu_host(tmp_path)
    for gpu, bus, minor, render in (
        (0, "0000:01:00.0", 1, "renderD129"),
        (1, "0000:41:00.0", 0, "renderD128"),
    ):
        mounts = gpu_mounts(gpu, tmp_path)
        devices = {m.dest: m.source for m in mounts if m.op == "--dev-bind"}
        expected = [f"/dev/nvidia{minor}", f"/dev/dri/{render}"]
        expected += [f"/dev/{n}" for n in CONTROL_NODES if n != "nvidia-uvm-tools"]  # absent
        assert sorted(devices) == sorted(expected)
        assert all(src == str(tmp_path / dest.lstrip("/")) for dest, src in devices.items())
        binds = [(m.dest, m.source) for m in mounts if m.op == "--ro-bind"]
        pci = f"/sys/devices/pci0000:00/{bus}"
        gpu_proc = f"/proc/driver/nvidia/gpus/{bus}"
        assert binds == [(pci, str(tmp_path) + pci), (gpu_proc, str(tmp_path) + gpu_proc)]
        links = {m.dest: m.source for m in mounts if m.op == "--symlink"}
        assert links[f"/sys/class/drm/{render}"] == f"../../devices/pci0000:00/{bus}/drm/{render}"
        assert f"/sys/dev/char/226:{render[7:]}" in links
        # the other GPUs' procfs entries are hidden under a tmpfs, before its own is bound
        ops = [(m.op, m.dest) for m in mounts]
        assert ops.index(("--tmpfs", "/proc/driver/nvidia/gpus")) < ops.index(
            ("--ro-bind", gpu_proc)
        )
    with pytest.raises(GPUNotFound, match=r"GPU 2 is not on this machine.*0000:41:00.0"):
        gpu_mounts(2, tmp_path)


def test_gpu_mounts_fit_into_a_sandbox_command_line(tmp_path):
    _fake_gpu_host(tmp_path)
    argv = bwrap_argv(["python"], SandboxSpec((), devices=gpu_mounts(0, tmp_path)), as_root=True)
    assert argv.index("--proc") < argv.index("/proc/driver/nvidia/gpus")
    assert argv.index("--dev") < argv.index("/dev/nvidia1")
    assert ["--perms", "0755", "--dir", "/dev/dri"] == argv[
        argv.index("/dev/dri") - 3 : argv.index("/dev/dri") + 1
    ]


def test_without_bwrap_workers_render_targets_but_refuse_scripts(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # the farm process finds no bwrap
    with LocalFarm(workers=1, engine="workbench", size=32, metrics_interval=0) as farm:
        status = farm.status()
        assert status["os_sandboxed"] is False
        with Client(farm.address, timeout=120) as client:
            target = client.reset(seed=5, index=0)  # a trusted render: done
            assert target.image.shape == (32, 32, 3)
            with pytest.raises(ProtocolError) as refused:
                client.step(dsl_program(target.scene), target)
    assert "refuses untrusted scripts" in refused.value.message
    assert "not in the OS sandbox" in refused.value.message
    assert "--no-os-sandbox" in refused.value.message


def test_no_os_sandbox_runs_scripts_and_says_loudly_what_it_gives_up(capfd):
    with LocalFarm(
        workers=1, engine="workbench", size=32, metrics_interval=0, os_sandbox=False
    ) as farm:
        assert farm.status()["os_sandboxed"] is False
        with Client(farm.address, timeout=120) as client:
            target = client.reset(seed=5, index=0)
            assert client.step(dsl_program(target.scene), target).outcome == "ok"
    err = capfd.readouterr().err
    assert err.count("the OS sandbox is OFF (--no-os-sandbox)") == 1
    assert "signal this farm" in err


def test_the_cli_flag_turns_the_os_sandbox_off():
    from derender.cli import build_parser
    from derender.cli.farm import _config

    parser = build_parser()
    assert _config(parser.parse_args(["farm"])).os_sandbox is True  # type: ignore[attr-defined]
    off = _config(parser.parse_args(["farm", "--no-os-sandbox"]))
    assert off.os_sandbox is False  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "engine", ["cycles", pytest.param("eevee", marks=[pytest.mark.eevee, pytest.mark.timeout(900)])]
)
def test_every_engine_renders_in_the_sandbox(engine):
    """Workbench runs in every farm test; Cycles and EEVEE (software GL: slow) here."""
    with LocalFarm(
        workers=1, engine=engine, size=32, samples=1, metrics_interval=0, hard_deadline=300
    ).start(timeout=600) as farm:
        assert farm.status()["os_sandboxed"] is True
        with Client(farm.address, timeout=600) as client:
            target = client.reset(seed=1, index=0)
            result = client.step(dsl_program(target.scene), target, preset="seed")
    assert result.outcome == "ok" and result.components["mse"] == 0.0


def test_derender_farm_refuses_a_gpu_it_cannot_give_a_worker_with_status_2(capsys):
    from derender.cli import main

    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    bind = f"tcp://127.0.0.1:{port.getsockname()[1]}"
    port.close()
    assert main(["farm", "--gpus", "7", "--workers", "1", "--bind", bind]) == 2
    assert "GPU 7 is not on this machine" in capsys.readouterr().err


def test_the_workers_own_output_goes_to_the_worker_log_not_the_terminal(tmp_path, capfd):
    worker_log = tmp_path / "workers.log"
    with LocalFarm(
        workers=1, engine="workbench", size=32, metrics_interval=0, worker_log=str(worker_log)
    ) as farm:
        with Client(farm.address, timeout=120) as client:
            target = client.reset(seed=5, index=0)
            assert client.step(dsl_program(target.scene), target).outcome == "ok"
    err = capfd.readouterr().err
    assert worker_log.is_file()
    assert "EGL" not in err  # headless Blender's OpenGL start-up complains here


def test_target_workers_fill_the_shader_cache_and_step_workers_get_a_private_copy(tmp_path):
    """Real bwrap: a target-role process writes the farm's cache; a step-role process sees
    it read-only and ``shader_cache.seed`` copies it where Mesa will look; an SVG worker
    sees none of it."""
    from derender.farm import shader_cache

    socket_dir = _socket_dir(tmp_path)
    backend = f"ipc://{socket_dir / 'backend.sock'}"
    config = FarmConfig(workers=1, svg_workers=1)
    sup = Supervisor(config, tmp_path, dict.fromkeys(("step", "target", "svg"), backend))
    assert [sup.launcher.role(s) for s in range(3)] == ["step", "target", "svg"]
    write = (
        "import os; d = os.environ['MESA_SHADER_CACHE_DIR']; "
        "os.makedirs(d + '/mesa_shader_cache', exist_ok=True); "
        "open(d + '/mesa_shader_cache/entry', 'w').write('compiled'); print(d)"
    )
    proc, _ = sup.launcher.launch([sys.executable, "-I", "-c", write], 1, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.decode().strip() == shader_cache.SHARED
    cache = tmp_path / "gl-cache"
    assert (cache / "mesa_shader_cache" / "entry").read_text() == "compiled"
    copy = (
        "import os\n"
        "from derender.farm import shader_cache\n"
        "try:\n"
        "    open(shader_cache.SEED + '/planted', 'w')\n"
        "except OSError as exc:\n"
        "    print('refused', exc.errno)\n"
        "shader_cache.seed()\n"
        "own = os.environ['MESA_SHADER_CACHE_DIR']\n"
        "print(own, open(own + '/mesa_shader_cache/entry').read())\n"
    )
    proc, _ = sup.launcher.launch([sys.executable, "-I", "-c", copy], 0, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert out.decode().split("\n")[:2] == ["refused 30", f"{shader_cache.OWN} compiled"]
    assert sorted(p.name for p in cache.rglob("*")) == ["entry", "mesa_shader_cache"]
    argv = " ".join(bwrap_argv(["true"], sup.launcher.sandbox(2)))
    assert "gl-cache" not in argv and "gl-seed" not in argv  # SVG workers render no GL
