# mypy: disable-error-code="union-attr,attr-defined"
# (fake-bpy: context members are Optional; Scene.derender and bpy.ops.derender exist only
# once the add-on is registered)
"""Latency of the sidebar panel's operators and of the GUI server's timer tick.

In one headless Blender with the add-on enabled, at one engine/size: build the frame,
load targets, run the ground-truth program of each target through ``Run in sandbox``, and
time the GUI server's timer callback idle (what an idle Blender pays every 50 ms) and
while answering a client's steps (how long one tick blocks the UI). Medians over
``--repeat`` runs; wall time on a shared machine, so compare runs on the same host.

    .venv/bin/python bench/panel.py [--engine workbench] [--size 128] [--repeat 10]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Sequence

# isort: off
import bpy
import addon_utils  # importable only once bpy is

# isort: on
from derender.addon.session import SESSION
from derender.protocol.client import Client
from derender.scenes import dsl_program


def _ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e3:8.2f} ms  max {max(samples) * 1e3:8.2f} ms"


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", default="workbench", choices=("workbench", "cycles", "eevee"))
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args(argv)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("derender", default_set=True)
    props = bpy.context.scene.derender
    props.engine, props.width, props.height = args.engine, args.size, args.size
    props.samples = args.samples
    print(
        f"derender panel benchmark: {args.engine} {args.size}x{args.size}, "
        f"{args.samples} samples, {args.repeat} repeats"
    )
    text = bpy.data.texts.new("agent.py")  # made before the frame: resets keep it
    props.script = text
    print(f"build frame (first)   {_timed(bpy.ops.derender.build_frame) * 1e3:8.2f} ms")

    loads, runs = [], []
    for seed in range(args.repeat):
        bpy.context.scene.derender.seed = seed
        loads.append(_timed(lambda: bpy.ops.derender.load_target(source="SEED")))
        assert SESSION.target is not None
        scene = SESSION.target.scene
        text.from_string(dsl_program(scene))
        runs.append(_timed(bpy.ops.derender.run_script))
        result = SESSION.result
        assert result is not None and result.outcome == "ok", result.message
    print(f"load target           {_ms(loads)}")
    print(f"run in sandbox        {_ms(runs)}")

    bpy.context.preferences.addons["derender"].preferences.port = 0  # any free port
    bpy.ops.derender.server_start()
    tick = SESSION.server._timer
    idle = [_timed(tick) for _ in range(200)]
    print(f"server tick, idle     {_ms(idle)}")

    busy: list[float] = []
    assert SESSION.target is not None
    target_id = SESSION.target.target_id

    def client() -> None:
        with Client(SESSION.server.endpoints[0], timeout=120) as c:
            for _ in range(args.repeat):
                c.step("add_object('cube', 'large', 'metal', 'red', 0.0, 0.0)", target_id)

    thread = threading.Thread(target=client)
    thread.start()
    while thread.is_alive():
        before = SESSION.server.handled
        t = _timed(tick)
        if SESSION.server.handled > before:
            busy.append(t)
        thread.join(0.001)
    print(f"server tick, 1 step   {_ms(busy)}  ({len(busy)} steps)")
    bpy.ops.derender.server_stop()
    addon_utils.disable("derender", default_set=True)


if __name__ == "__main__":
    main()
