"""What a worker host's relay costs: step latency and farm throughput, relayed vs local.

    derender bench relay [--engine workbench] [--size 64] [--steps 200]
                         [--latency-steps 100] [--repeat 2] [--json OUT.json]

Two farms run side by side on this machine, with CURVE keys made for the run and
everything on loopback:

- **local**: 2 local step workers;
- **relayed**: 1 local step worker and a worker host (``derender farm join``, a separate
  process) with 1 OS-sandboxed step worker, relayed over CURVE to the farm's
  ``remote_backend``.

- **latency**: single steps of the oracle program, one at a time, on the relayed farm;
  after each, the farm's status tells which worker served it, so the local and the
  relayed worker's latencies come from one interleaved run. ``overhead`` is the client's
  round trip minus the worker's own ``service`` time.
- **throughput**: ``--steps`` pipelined steps (``step_many``, window 4) on each farm,
  runs interleaved A B A B, best of ``--repeat``; ratio = relayed / local.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from derender import Client
from derender.farm.local import LocalFarm
from derender.protocol.keys import create_keypair
from derender.scenes import dsl_program


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _summary(latency: list[float], overhead: list[float]) -> dict[str, Any]:
    return {
        "n": len(latency),
        "p50_ms": _ms(latency, 0.5),
        "p99_ms": _ms(latency, 0.99),
        "overhead_p50_ms": _ms(overhead, 0.5),
        "overhead_mean_ms": round(1000 * statistics.fmean(overhead), 2),
    }


def _jobs(farm: LocalFarm) -> dict[str, int]:
    return {w["id"]: w["jobs"] for w in farm.status()["workers"] if w["role"] == "step"}


def latency(farm: LocalFarm, steps: int) -> dict[str, Any]:
    """Per-step latency of the local and the relayed worker, from one interleaved run."""
    samples: dict[str, tuple[list[float], list[float]]] = {
        "local": ([], []),
        "relayed": ([], []),
    }
    with Client(farm.address, timeout=300) as client:
        target = client.reset(seed=0, index=0)
        script = dsl_program(target.scene)
        client.step(script, target)  # warm
        for _ in range(steps):
            before = _jobs(farm)
            t0 = time.perf_counter()
            result = client.step(script, target)
            elapsed = time.perf_counter() - t0
            served = [i for i, n in _jobs(farm).items() if n > before.get(i, 0)]
            kind = "relayed" if served[0].startswith("bench.") else "local"
            samples[kind][0].append(elapsed)
            samples[kind][1].append(elapsed - result.timings["service"])
    return {kind: _summary(*values) for kind, values in samples.items()}


def throughput(farm: LocalFarm, steps: int) -> float:
    with Client(farm.address, timeout=300) as client:
        target = client.reset(seed=0, index=0)
        scripts = [dsl_program(target.scene)] * steps
        client.step_many(scripts[:8], target, window=4)  # warm
        t0 = time.perf_counter()
        results = client.step_many(scripts, target, window=4)
        elapsed = time.perf_counter() - t0
    assert all(r.outcome == "ok" for r in results), {r.outcome for r in results}
    return steps / elapsed


def _join(farm: LocalFarm, keys: Path, config: Path, log: Path) -> subprocess.Popen:
    assert farm.config.remote_backend is not None
    command = [sys.executable, "-m", "derender.cli", "farm", "join", "--name", "bench"]
    command += ["--connect", farm.config.remote_backend, "--workers", "1"]
    command += ["--server-key", str(keys / "farm.key"), "--keys", str(keys / "host.key_secret")]
    with open(log, "wb") as err:
        return subprocess.Popen(
            [*command, "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


def _wait_joined(farm: LocalFarm, host: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.poll() is not None:
            raise RuntimeError(f"the worker host exited with status {host.returncode}")
        workers = farm.status()["workers"]
        if any(w["id"].startswith("bench.") and w["state"] == "idle" for w in workers):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the hosted worker was not ready after {timeout:g} s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="derender-bench-relay-"))
    create_keypair(tmp / "keys", "farm")
    create_keypair(tmp / "keys", "host")
    (tmp / "clients").mkdir()
    (tmp / "clients" / "host.key").write_bytes((tmp / "keys" / "host.key").read_bytes())
    options: dict[str, Any] = {"engine": args.engine, "size": args.size, "metrics_interval": 0}
    config = tmp / "farm.toml"
    config.write_text(f'engine = "{args.engine}"\nsize = {args.size}\n')
    local = LocalFarm(workers=2, **options)
    relayed = LocalFarm(
        workers=1,
        remote_backend=f"tcp://127.0.0.1:{_free_port()}",
        curve_secret=str(tmp / "keys" / "farm.key_secret"),
        curve_clients=str(tmp / "clients"),
        **options,
    )
    host = None
    try:
        local.start()
        relayed.start()
        host = _join(relayed, tmp / "keys", config, tmp / "host.log")
        _wait_joined(relayed, host)
        report: dict[str, Any] = {"engine": args.engine, "size": args.size}
        report["latency"] = latency(relayed, args.latency_steps)
        best = {"local": 0.0, "relayed": 0.0}
        for _ in range(args.repeat):
            for name, farm in (("local", local), ("relayed", relayed)):
                best[name] = max(best[name], throughput(farm, args.steps))
        report["steps_per_s"] = {k: round(v, 2) for k, v in best.items()}
        report["throughput_ratio"] = round(best["relayed"] / best["local"], 3)
        return report
    finally:
        if host is not None and host.poll() is None:
            host.send_signal(signal.SIGTERM)
            host.wait(timeout=30)
        relayed.stop()
        local.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="derender bench relay", description=__doc__)
    parser.add_argument("--engine", default="workbench")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="pipelined steps per run")
    parser.add_argument("--latency-steps", type=int, default=100, help="sequential steps")
    parser.add_argument("--repeat", type=int, default=2, help="best of N interleaved runs")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
