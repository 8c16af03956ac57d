"""`derender serve` end to end: a real headless Blender (Workbench, 64 px) over TCP and IPC.

One server process for the whole module (Blender's start-up costs seconds): a farm of one
step worker and one target worker. The last section tests the client's transport against
a raw ROUTER socket.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import zmq
from derender import Client
from derender.protocol import codec
from derender.protocol.aio import AsyncClient
from derender.protocol.errors import OUTCOMES, ProtocolError
from derender.protocol.messages import ServerLimits
from derender.protocol.transport import is_loopback
from derender.reward.spec import DEFAULT_PRESET
from derender.scenes import (
    FrameSpec,
    GeneratorConfig,
    bpy_program,
    dsl_program,
    generate_scene,
    load_scenes,
)
from derender.scenes.cheatsheet import EXAMPLE_DSL

DATA = Path(__file__).parents[1] / "data" / "clevr_scene_sample.json"
FRAME = FrameSpec(width=64, height=64, engine="workbench")
EMPTY = "# nothing\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory, spawn_serve):
    tmp = tmp_path_factory.mktemp("serve")
    proc, endpoints = spawn_serve(
        [
            "--engine",
            "workbench",
            "--size",
            "64",
            "--deadline",
            "1",
            "--address",
            "tcp://127.0.0.1:*",
            "--address",
            f"ipc://{tmp}/derender.ipc",
            "--dataset",
            f"sample={DATA}",
        ],
        log=tmp / "serve.log",
    )
    yield SimpleNamespace(proc=proc, tcp=endpoints[0], ipc=endpoints[1], log=tmp / "serve.log")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, (tmp / "serve.log").read_text()


@pytest.fixture(params=["tcp", "ipc"])
def client(server, request):
    with Client(getattr(server, request.param), timeout=60, retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def target(server):
    with Client(server.tcp, timeout=60) as c:
        return c.reset(seed=7, index=2)


def test_info(client):
    info = client.info()
    assert info.frame == FRAME and info.frame_hash == FRAME.hash()
    assert info.engine == "workbench" and info.server["name"] == "derender"
    assert "seed" in info.reward_presets and info.default_preset == DEFAULT_PRESET
    assert info.datasets == {"sample": len(load_scenes(DATA))}
    assert "add_object(" in info.cheatsheet and "cylinder" in info.universe["shapes"]
    assert info.protocol["versions"] == [1]
    assert info.protocol["limits"]["max_script_chars"] == ServerLimits().max_script_chars
    assert client.ping() < 1.0


def test_reset_by_seed_scene_and_dataset(client, target):
    scene = generate_scene(7, 2, GeneratorConfig(frame=FRAME))  # pixel_coords in this frame
    assert target.scene.objects == scene.objects
    assert target.frame_hash == FRAME.hash()
    assert target.image.shape == (64, 64, 3) and target.image.dtype == np.uint8
    assert target.image.std() > 5  # a real render, not a blank frame
    assert target.masks.shape == (64, 64) and target.masks.dtype == np.int32
    labels = set(np.unique(target.masks)) - {0}
    assert labels and labels <= set(range(1, len(scene) + 1))
    # the id is a content hash: the same scene sent as CLEVR JSON is the same target
    again = client.reset(scene=scene, masks=False)
    assert again.target_id == target.target_id and again.masks is None
    np.testing.assert_array_equal(again.image, target.image)
    sample = client.reset(dataset="sample", index=0)
    assert sample.scene.stripped() == load_scenes(DATA)[0].stripped()
    with pytest.raises(ProtocolError) as err:
        client.reset(dataset="sample", index=10**6)
    assert err.value.code == "bad_request" and "out of range" in str(err.value)


def test_step_ground_truth_program_matches_target(client, target):
    res = client.step(dsl_program(target.scene), target, masks=True)
    assert res.outcome == "ok", res.message
    assert res.target_id == target.target_id and res.frame_hash == FRAME.hash()
    assert np.abs(res.image.astype(int) - target.image.astype(int)).mean() < 1.0
    assert res.scene is not None and len(res.scene) == len(target.scene)
    assert res.masks.shape == (64, 64)
    assert res.components["ssim"] > 0.99 and res.components["valid"] == 1.0
    assert res.preset == DEFAULT_PRESET and len(res.spec_hash) > 0
    assert res.timings["service"] > 0
    empty = client.step(EMPTY, target.target_id)
    assert empty.outcome == "ok" and empty.reward < res.reward
    assert empty.scene is not None and len(empty.scene) == 0


def test_cheatsheet_matches_the_sandbox(client, target):
    import bpy  # noqa: F401  (mathutils, which the guards import, needs bpy loaded)
    from derender.addon.sandbox.guards import ALLOWED_MODULES

    text = client.info().cheatsheet
    assert all(name in text for name in ALLOWED_MODULES)
    res = client.step(EXAMPLE_DSL, target)  # the prompt's example runs as printed
    assert res.outcome == "ok", res.message
    added = [(o.shape, o.color) for o in res.scene.objects]
    assert added == [("cube", "red"), ("sphere", "cyan")]
    # the bpy subset it describes (scored with seed, whose MSE term shows pixel identity)
    bpy_res = client.step(bpy_program(target.scene), target, preset="seed")
    assert bpy_res.outcome == "ok", bpy_res.message
    assert bpy_res.components["mse"] < 1e-3


def test_step_reports_stdout_and_other_presets(client, target):
    res = client.step("print('hello', 6 * 7)\n" + dsl_program(target.scene), target, preset="scene")
    assert res.outcome == "ok" and "hello 42" in res.stdout
    assert res.preset == "scene" and res.components["scene_graph"] > 0.99
    with pytest.raises(ProtocolError) as err:
        client.step(EMPTY, target, preset="no-such-preset")
    assert err.value.code == "bad_request" and "no-such-preset" in str(err.value)


FAILURES = {
    "syntax_error": "add_object(shape='cube'\n",
    "runtime_error": "x = 1\ny = x / 0\n",
    "sandbox_violation": "import os\nos.system('true')\n",
    "timeout": "while True:\n    pass\n",
    "resource_limit": "x = 10 ** 10 ** 8\n",
}


@pytest.mark.parametrize("outcome", sorted(FAILURES))
def test_step_failure_outcomes(client, target, outcome):
    res = client.step(FAILURES[outcome], target)
    assert res.outcome == outcome, (res.outcome, res.message)
    assert res.outcome in OUTCOMES and res.message
    assert res.components["valid"] < 1.0
    if outcome in ("syntax_error", "runtime_error"):
        assert res.line in (1, 2)
    # the server is intact afterwards: the ground truth still scores as before
    assert client.step(dsl_program(target.scene), target).outcome == "ok"


def test_errors_come_back_as_their_typed_class(client):
    from derender.protocol.errors import BadRequest, UnknownTarget

    with pytest.raises(UnknownTarget) as err:
        client.step(EMPTY, "t-0000000000000000")
    assert err.value.code == "unknown_target" and err.value.request_id is not None
    with pytest.raises(BadRequest, match="no-such"):
        client.step(EMPTY, "t-0000000000000000", preset="no-such")


def test_step_batch_and_step_many(client, target):
    good = dsl_program(target.scene)
    batch = client.step_batch(
        [good, FAILURES["syntax_error"], EMPTY], [target, target, "t-0000000000000000"]
    )
    assert batch[0].outcome == "ok" and batch[1].outcome == "syntax_error"
    assert type(batch[2]).__name__ == "UnknownTarget" and batch[2].code == "unknown_target"
    assert batch[0].reward > batch[1].reward
    (alone,) = client.step_batch([EMPTY], "t-0000000000000000")  # a batch of one: same rule
    assert isinstance(alone, ProtocolError) and alone.code == "unknown_target"
    many = client.step_many([good, EMPTY, FAILURES["runtime_error"]], target)
    assert [r.outcome for r in many] == ["ok", "ok", "runtime_error"]
    assert many[0].reward == pytest.approx(batch[0].reward)


def test_render_trusted_scene(client, target):
    res = client.render(target.scene)
    np.testing.assert_array_equal(res.image, target.image)
    np.testing.assert_array_equal(res.masks, target.masks)
    assert res.frame_hash == FRAME.hash()


def test_png_encoding_is_lossless(server, target):
    with Client(server.tcp, timeout=60, encoding="png") as c:
        t = c.reset(seed=7, index=2)
        np.testing.assert_array_equal(t.image, target.image)
        np.testing.assert_array_equal(t.masks, target.masks)


def test_asyncio_client(server, target):
    async def main():
        async with AsyncClient(server.ipc, timeout=60) as c:
            pings = await asyncio.gather(*(c.ping() for _ in range(20)))
            info = await c.info()
            steps = await c.step_many([dsl_program(target.scene), EMPTY], target)
            return pings, info, steps

    pings, info, steps = asyncio.run(main())
    assert len(pings) == 20 and info.frame_hash == FRAME.hash()
    assert [s.outcome for s in steps] == ["ok", "ok"] and steps[0].reward > steps[1].reward


KILLED_CLIENT = """
import sys, zmq
from derender.protocol import codec
sock = zmq.Context().socket(zmq.DEALER)
sock.connect(sys.argv[1])
header = {"v": 1, "id": "doomed", "type": "step", "script": "while True:\\n    pass\\n",
          "target": {"target_id": sys.argv[2]}}
sock.send_multipart([b"", *codec.encode(header)])
print("sent", flush=True)
sock.recv_multipart()
"""


def test_killed_client_does_not_block_the_server(server, target):
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT, server.tcp, target.target_id],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "sent"
    time.sleep(0.2)  # the server is now running the doomed script
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    with Client(server.tcp, timeout=30, retries=0) as c:
        assert c.step(dsl_program(target.scene), target).outcome == "ok"
        assert c.ping() < 1.0
    assert server.proc.poll() is None


# -- the client's transport, against a raw ROUTER ------------------------------------------
def test_lazy_pirate_retry_after_a_lost_request():
    """The first attempt times out unanswered; the retry on a fresh socket is answered."""
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    seen: list[str] = []

    def serve() -> None:
        while len(seen) < 2 and router.poll(10_000):
            frames = router.recv_multipart()
            envelope, body = frames[:2], frames[2:]
            request = codec.decode(body)
            seen.append(request["id"])
            if len(seen) == 2:  # attempt 1 is lost: only the retry gets an answer
                reply = {"v": 1, "id": request["id"], "type": "ping", "ok": True, "time": 0.0}
                router.send_multipart([*envelope, *codec.encode(reply)])

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=0.5, retries=3) as c:
            t0 = time.monotonic()
            c.ping()
            assert time.monotonic() - t0 >= 0.5
    finally:
        thread.join()
        router.close(0)
    assert len(seen) == 2 and seen[0] == seen[1]  # the same request, sent again


def test_non_loopback_bind_requires_keys():
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("ipc:///tmp/x")
    assert is_loopback("tcp://[::1]:5") and is_loopback("tcp://localhost:5")
    assert not is_loopback("tcp://0.0.0.0:5555") and not is_loopback("tcp://*:5555")
    assert not is_loopback("tcp://eth0:5555") and not is_loopback("tcp://10.1.2.3:5")
    out = subprocess.run(
        [sys.executable, "-m", "derender.cli", "serve", "--address", "tcp://*:5999"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "CURVE" in out.stderr
