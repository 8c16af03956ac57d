"""Protocol overhead benchmark: round trips through a real server vs. in-process calls.

The server runs in a child process around a *trivial* service (no Blender: a fixed
image, outcome ok), so what is measured is the protocol (codec, validation, ZeroMQ,
envelope, client) plus the in-process reward where a step is scored. Overhead of a step =
its round trip minus the same request handled in-process. Target: under 1 ms on loopback.
First, the CPU time of each protocol stage (immune to other load); then wall-clock round
trips, which on a busy shared machine include waiting for a CPU at each thread hand-off.

    .venv/bin/python bench/protocol.py [--n 2000] [--size 64]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import cast

import numpy as np
import zmq
from derender.farm.in_process import Handler
from derender.protocol import codec
from derender.protocol.client import Client
from derender.protocol.messages import Ping, SeedTarget, Step, StepItem, parse_request
from derender.protocol.results import ScriptRun, StepResult
from derender.protocol.transport import split_envelope
from derender.reward import preset
from derender.scenes import FrameSpec, Scene, generate_scene


class TrivialService:
    """The Service interface without Blender: every render is the same image."""

    def __init__(self, size: int) -> None:
        self.frame = FrameSpec(width=size, height=size, engine="workbench")
        rng = np.random.default_rng(0)
        self._image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        self._masks = np.zeros((size, size), np.int32)
        self._readback = generate_scene(0, 0)

    def render_scene(self, scene: Scene, masks: bool = True) -> SimpleNamespace:
        return SimpleNamespace(image=self._image, masks=self._masks if masks else None, timings={})

    def step(self, script: str, seed: int = 0, masks: bool = True) -> ScriptRun:
        masks_ = self._masks if masks else None
        return ScriptRun("ok", image=self._image, masks=masks_, scene=self._readback)


def _serve(size: int, addresses: list[str], preset_name: str, conn) -> None:
    """A ROUTER around the request core, answering one request at a time."""
    preset(preset_name).lpips_identity()  # load what scoring needs before listening
    handler = Handler(TrivialService(size))
    sock: zmq.Socket = zmq.Context.instance().socket(zmq.ROUTER)
    endpoints = []
    for address in addresses:
        sock.bind(address)
        endpoints.append(cast(bytes, sock.getsockopt(zmq.LAST_ENDPOINT)).decode())
    conn.send(endpoints)
    while not conn.poll():
        if sock.poll(100):
            envelope, body = split_envelope(sock.recv_multipart())
            sock.send_multipart(envelope + handler.handle_frames(body))
    sock.close(0)


def _paired(local: Callable[[], object], remote: Callable[[], object], n: int) -> tuple:
    """Alternate an in-process call and a round trip, so both see the same machine load
    (a shared, busy machine otherwise dominates the difference); return both samples."""
    for _ in range(min(50, n)):  # warm-up
        local()
        remote()
    loc, rem = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        local()
        t1 = time.perf_counter()
        remote()
        t2 = time.perf_counter()
        loc.append(t1 - t0)
        rem.append(t2 - t1)
    return loc, rem


def _us(samples: list[float]) -> str:
    us = sorted(s * 1e6 for s in samples)
    p99 = us[int(0.99 * (len(us) - 1))]
    return f"median {statistics.median(us):8.1f} us   p99 {p99:9.1f} us"


def _measure(ep: str, handler: Handler, target_id: str, n: int, preset_name: str) -> None:
    """Print paired rows (raw ping, Client.ping, Client.step) for one endpoint."""
    ping_frames = codec.encode(Ping("p").to_wire())
    step_frames = codec.encode(
        Step("s", StepItem("add_object()", target_id), preset_name).to_wire()
    )
    raw: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    raw.connect(ep)
    server_work: list[float] = []

    def raw_ping() -> None:
        raw.send_multipart([b"", *ping_frames])
        raw.recv_multipart()

    with Client(ep, timeout=60) as client:
        assert client.reset(0, 0).target_id == target_id  # same frame, same content id

        def remote_step() -> None:
            res = client.step("add_object()", target_id, preset=preset_name)
            server_work.append(res.timings["service"] + res.timings["reward"])

        local_ping = lambda: handler.handle_frames(ping_frames)  # noqa: E731
        rows = {
            "raw DEALER ping": _paired(local_ping, raw_ping, n),
            "Client.ping": _paired(local_ping, client.ping, n),
            "Client.step": _paired(
                lambda: handler.handle_frames(step_frames), remote_step, max(n // 4, 50)
            ),
        }
    raw.close(linger=0)
    kind = ep.split(":")[0]
    print(f"\n{ep}")
    for name, (loc, rem) in rows.items():
        diff = [r - x for x, r in zip(loc, rem, strict=True)]
        print(f"  {name + f' ({kind})':<22} in-process {_us(loc)}")
        print(f"  {'':<22} round trip {_us(rem)}")
        print(f"  {'':<22} overhead   {_us(diff)}")
    # Each step's round trip minus that same request's service + reward time as the server
    # measured it: robust against load that changes between the paired calls.
    rem = rows["Client.step"][1]
    own = [r - w for r, w in zip(rem, server_work[-len(rem) :], strict=True)]
    print(f"  {'':<22} rtt - server's service+reward {_us(own)}")


def _cpu(handler: Handler, target_id: str, preset_name: str) -> None:
    """CPU time (not wall: immune to a busy machine) of each protocol stage of one step."""
    req = Step("s", StepItem("add_object()", target_id), preset_name)
    reply = handler.handle(req)
    req_frames, reply_frames = codec.encode(req.to_wire()), codec.encode(reply)

    def cpu_us(fn: Callable[[], object], n: int = 2000) -> float:
        out = []
        for _ in range(n):
            t0 = time.process_time_ns()
            fn()
            out.append(time.process_time_ns() - t0)
        return statistics.median(out) / 1000

    stages = {
        "client: encode request": lambda: codec.encode(req.to_wire()),
        "server: decode + validate request": lambda: parse_request(codec.decode(req_frames)),
        "server: encode reply": lambda: codec.encode(reply),
        "client: decode reply + StepResult": lambda: StepResult.from_wire(
            codec.decode(reply_frames)
        ),
    }
    print(f"CPU per step (reply frames {[len(f) for f in reply_frames]} bytes)")
    total = 0.0
    for name, fn in stages.items():
        us = cpu_us(fn)
        total += us
        print(f"  {name:<36} {us:8.1f} us")
    print(f"  {'protocol total (excl. ZeroMQ)':<36} {total:8.1f} us")
    work = cpu_us(lambda: handler.handle(req), 300)
    print(f"  {'handler.handle(step), no codec':<36} {work:8.1f} us")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="round trips per measurement")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--preset", default="seed", help="reward preset for the step rows")
    args = ap.parse_args(argv)

    # Learn once whether LPIPS loads (torch), as `derender serve` does at start-up.
    preset(args.preset).lpips_identity()
    handler = Handler(TrivialService(args.size))
    target = handler.resolve(SeedTarget(0, 0))
    _cpu(handler, target.target_id, args.preset)
    print(
        f"{args.n} pings / {max(args.n // 4, 50)} steps per row, {args.size}x{args.size} "
        f"images, preset {args.preset}; overhead = median of paired (round trip - in-process)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        parent, child = mp.Pipe()
        proc = mp.get_context("spawn").Process(
            target=_serve,
            args=(args.size, ["tcp://127.0.0.1:*", f"ipc://{tmp}/bench"], args.preset, child),
        )
        proc.start()
        try:
            for ep in parent.recv():
                _measure(ep, handler, target.target_id, args.n, args.preset)
        finally:
            parent.send("stop")
            proc.join(10)


if __name__ == "__main__":
    main()
