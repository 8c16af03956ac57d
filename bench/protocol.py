"""Protocol overhead benchmark: round trips through a real server vs. in-process calls.

The server runs in a child process around a *trivial* service (no Blender: a fixed
image, outcome ok), so what is measured is the protocol (codec, validation, ZeroMQ,
envelope, client) plus the in-process reward where a step is scored. Overhead of a step =
its round trip minus the same request handled in-process. Target: under 1 ms on loopback.

    .venv/bin/python bench/protocol.py [--n 2000] [--size 64]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import zmq
from derender.addon.server import Server
from derender.protocol import codec
from derender.protocol.client import Client
from derender.protocol.handler import Handler
from derender.protocol.messages import Ping, SeedTarget, Step, StepItem
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
        return SimpleNamespace(image=self._image, masks=self._masks if masks else None,
                               timings={})

    def step(self, script: str, seed: int = 0, masks: bool = True) -> SimpleNamespace:
        return SimpleNamespace(outcome="ok", message="", line=None, stdout="",
                               image=self._image, masks=self._masks if masks else None,
                               readback=self._readback, timings={}, recycle=False)


def _serve(size: int, addresses: list[str], conn) -> None:
    server = Server(Handler(TrivialService(size)), addresses)
    conn.send(server.endpoints)
    server.serve_forever(lambda: conn.poll())


def _time(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(50, n)):  # warm-up
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _row(name: str, samples: list[float]) -> str:
    us = sorted(s * 1e6 for s in samples)
    p99 = us[int(0.99 * (len(us) - 1))]
    return f"{name:<44} median {statistics.median(us):8.1f} us   p99 {p99:8.1f} us"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="round trips per measurement")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--preset", default="seed", help="reward preset for the step rows")
    args = ap.parse_args()

    handler = Handler(TrivialService(args.size))
    target = handler.resolve(SeedTarget(0, 0))
    step_req = Step("s", StepItem("add_object()", target.target_id), args.preset)
    ping_frames = codec.encode(Ping("p").to_wire())
    step_frames = codec.encode(step_req.to_wire())
    print(f"in-process ({args.n} calls, {args.size}x{args.size} images, preset {args.preset})")
    inproc_ping = _time(lambda: handler.handle_frames(ping_frames), args.n)
    inproc_step = _time(lambda: handler.handle_frames(step_frames), max(args.n // 4, 50))
    print(_row("handler.handle_frames(ping)", inproc_ping))
    print(_row("handler.handle_frames(step) incl. reward", inproc_step))

    with tempfile.TemporaryDirectory() as tmp:
        parent, child = mp.Pipe()
        proc = mp.get_context("fork").Process(
            target=_serve, args=(args.size, ["tcp://127.0.0.1:*", f"ipc://{tmp}/bench"], child)
        )
        proc.start()
        endpoints = parent.recv()
        try:
            for ep in endpoints:
                kind = ep.split(":")[0]
                print(f"\nround trips over {ep}")
                with Client(ep, timeout=10) as client:
                    client.reset(0, 0)
                    rtt_ping = _time(client.ping, args.n)
                    rtt_step = _time(lambda c=client: c.step("add_object()", target.target_id,
                                                             preset=args.preset),
                                     max(args.n // 4, 50))
                raw = zmq.Context.instance().socket(zmq.DEALER)
                raw.connect(ep)
                msg = [b"", *ping_frames]

                def raw_ping(sock=raw, msg=msg) -> None:
                    sock.send_multipart(msg)
                    sock.recv_multipart()

                rtt_raw = _time(raw_ping, args.n)
                raw.close(linger=0)
                print(_row(f"raw DEALER ping ({kind})", rtt_raw))
                print(_row(f"Client.ping ({kind})", rtt_ping))
                print(_row(f"Client.step ({kind})", rtt_step))
                overhead = statistics.median(rtt_step) - statistics.median(inproc_step)
                print(f"{'step protocol overhead (median rtt - in-process)':<44} "
                      f"{overhead * 1e6:8.1f} us")
        finally:
            parent.send("stop")
            proc.join(10)


if __name__ == "__main__":
    main()
