"""Integration tests: a LocalFarm of two real Blender workers, real sockets, real kills."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import zmq
from derender import Client
from derender.protocol import codec
from derender.protocol.errors import ProtocolError
from derender.scenes import dsl_program, generate_scene

BROKEN = "x = (\n"
CRASHY = "y = 1 / 0\n"
HOSTILE = "import os\n"


@pytest.fixture(scope="module")
def client(farm):
    with Client(farm.address, timeout=120.0) as c:
        yield c


@pytest.fixture(scope="module")
def target(client):
    return client.reset(seed=11, index=0)


def test_info_and_status_describe_the_farm(farm, client, all_idle):
    info = client.info()
    assert (info.engine, info.frame.width, info.frame.height) == ("workbench", 32, 32)
    status = farm.status()
    assert status["frame_hash"] == info.frame_hash
    assert len(all_idle()) == 2
    assert status["os_sandboxed"] is True  # bwrap works here (setup installs it)
    assert status["network_isolated"] is True
    assert all(w["pid"] > 0 and w["rss_mb"] > 0 for w in status["workers"])


def test_batch_of_200_steps_every_reply_matches_its_request(farm, client, target):
    good = dsl_program(target.scene)
    kinds = [("ok", good), ("syntax_error", BROKEN), ("runtime_error", CRASHY)]
    plan = [kinds[i % 3] if i % 7 else kinds[0] for i in range(200)]
    jobs_before = farm.status()["metrics"]["jobs"]
    results = client.step_many([s for _, s in plan], target, window=32, preset="seed")
    assert len(results) == 200
    assert [r.outcome for r in results] == [o for o, _ in plan]
    for r in results:
        assert r.target_id == target.target_id
        if r.outcome == "ok":
            assert r.components["mse"] == 0.0 and r.reward > 0.9 and r.scene is not None
        else:
            assert r.image is None and r.reward == 0.0
    status = farm.status()
    assert status["metrics"]["jobs"] - jobs_before == 200  # the target was not re-rendered
    assert status["targets"] >= 1 and status["reward"]["scored"] >= 200


def test_concurrent_resets_of_one_scene_render_it_once(farm, client):
    scene_spec = {"seed": 12345, "index": 3}
    before = farm.status()["metrics"]["jobs"]
    from derender.protocol.messages import SeedTarget

    spec = SeedTarget(**scene_spec)
    results = client.step_batch([dsl_program(generate_scene(12345, 3))] * 4, [spec] * 4)
    assert [r.outcome for r in results] == ["ok"] * 4
    assert len({r.target_id for r in results}) == 1
    assert farm.status()["metrics"]["jobs"] - before == 5  # 1 target render + 4 steps


def test_a_worker_sigkilled_mid_batch_loses_nothing(farm, client, target, all_idle):
    all_idle()
    slow = "for i in range(100000):\n    pass\n" + dsl_program(target.scene)
    before = farm.status()
    out: list = []
    runner = threading.Thread(target=lambda: out.extend(client.step_many([slow] * 20, target)))
    runner.start()
    busy = None
    deadline = time.monotonic() + 60
    while busy is None and time.monotonic() < deadline:
        busy = next((w for w in farm.status()["workers"] if w["state"] == "busy"), None)
    assert busy is not None, "no worker became busy"
    os.kill(busy["pid"], signal.SIGKILL)
    runner.join(timeout=180)
    assert not runner.is_alive()
    assert [r.outcome for r in out] == ["ok"] * 20
    after = farm.status()
    assert after["restarts"] > before["restarts"]
    assert after["metrics"]["retries"] > before["metrics"]["retries"]
    assert busy["id"] not in {w["id"] for w in after["workers"]}


def test_a_sigstopped_worker_is_detected_and_replaced(farm, client, target, all_idle, wait_for):
    victim = all_idle()[0]
    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        # work keeps flowing meanwhile (the other worker, then the replacement)
        results = client.step_many([dsl_program(target.scene)] * 6, target)
        assert [r.outcome for r in results] == ["ok"] * 6
        wait_for(
            lambda: victim["id"] not in {w["id"] for w in farm.status()["workers"]},
            30,
            "the stopped worker to be dropped",
        )
        replaced = all_idle()
        assert victim["id"] not in {w["id"] for w in replaced}
        with pytest.raises(ProcessLookupError):
            for _ in range(50):  # the supervisor SIGKILLed it (a stopped process dies too)
                os.kill(victim["pid"], 0)
                time.sleep(0.1)
    finally:
        try:
            os.kill(victim["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_spinning_script_is_cut_at_the_hard_deadline(farm, client, target, all_idle):
    all_idle()
    restarts = farm.status()["restarts"]
    t0 = time.monotonic()
    result = client.step("while True:\n    pass\n", target)
    elapsed = time.monotonic() - t0
    assert result.outcome == "timeout" and "hard deadline" in result.message
    assert result.reward == 0.0
    assert 4.0 <= elapsed < 30.0
    assert farm.status()["restarts"] == restarts + 1
    assert client.step(dsl_program(target.scene), target).outcome == "ok"


def test_a_poisoned_script_fails_alone_and_workers_are_not_blamed(
    farm, client, target, crasher, all_idle
):
    all_idle()
    before = farm.status()
    good = dsl_program(target.scene)
    results = client.step_batch([good, crasher, good], target)
    assert [r.outcome for r in results] == ["ok", "poisoned", "ok"]
    assert "2 attempts" in results[1].message
    after = farm.status()
    assert after["restarts"] - before["restarts"] == 2  # it killed two workers ...
    assert after["metrics"]["retries"] - before["metrics"]["retries"] == 1
    assert len(all_idle()) == 2  # ... and both were replaced at once (no backoff)


def test_a_sandbox_violation_recycles_its_worker(farm, client, target, all_idle):
    all_idle()
    before = farm.status()["restarts"]
    result = client.step(HOSTILE, target)
    assert result.outcome == "sandbox_violation"
    assert farm.status()["restarts"] == before + 1
    assert len(all_idle()) == 2


def test_clients_that_disconnect_do_not_stall_the_farm(farm, client, target, wait_for):
    ctx = zmq.Context.instance()
    good = dsl_program(target.scene)
    for k in range(3):
        sock = ctx.socket(zmq.DEALER)
        sock.connect(farm.address)
        for i in range(10):
            header = {
                "v": 1,
                "id": f"gone-{k}-{i}",
                "type": "step",
                "script": good,
                "target": {"target_id": target.target_id},
            }
            sock.send_multipart([b"", *codec.encode(header)])
        sock.close(linger=500)  # the requests are sent, then the client is gone
    t0 = time.monotonic()
    assert client.step(good, target).outcome == "ok"
    wait_for(lambda: farm.status()["pending"] == 0, 60, "abandoned requests to drain")
    assert farm.status()["metrics"]["dropped"] >= 1
    assert time.monotonic() - t0 < 60


def test_a_full_queue_answers_overloaded_and_does_not_grow(farm, client, target):
    good = dsl_program(target.scene)
    with pytest.raises(ProtocolError) as err:
        client.step_batch([good] * 100, target)  # 100 jobs > max_pending 64
    assert err.value.code == "overloaded"
    # 150 pipelined single steps: the queue never exceeds the limit; the excess is refused
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(farm.address)
    for i in range(150):
        header = {
            "v": 1,
            "id": i,
            "type": "step",
            "script": good,
            "target": {"target_id": target.target_id},
        }
        sock.send_multipart([b"", *codec.encode(header)])
    assert farm.status()["queue"] <= 64
    replies = {}
    while len(replies) < 150:
        assert sock.poll(120_000), f"only {len(replies)} of 150 replies"
        reply = codec.decode(sock.recv_multipart()[1:])
        assert reply["id"] not in replies  # exactly once
        replies[reply["id"]] = reply
    sock.close()
    codes = [r["error"]["code"] for r in replies.values() if not r["ok"]]
    assert codes and set(codes) == {"overloaded"}
    assert sum(r["ok"] for r in replies.values()) >= 64
    assert farm.status()["queue"] == 0


def test_unknown_target_and_bad_preset_are_typed_errors(client, target):
    with pytest.raises(ProtocolError) as err:
        client.step("pass", "t-0000000000000000")
    assert err.value.code == "unknown_target"
    with pytest.raises(ProtocolError) as err:
        client.step("pass", target, preset="no-such-preset")
    assert err.value.code == "bad_request"


def test_dataset_renders_resumes_and_makes_a_contact_sheet(farm, tmp_path):
    import json

    from derender.addon import render
    from derender.addon.frame import BuiltFrame
    from derender.jobs.dataset import make_dataset
    from derender.scenes import FrameSpec, GeneratorConfig, enough_pixels, scene_from_json
    from PIL import Image

    out = tmp_path / "ds"
    report = make_dataset(out, 5, seed=3, address=farm.address)
    assert (report["rendered"], report["skipped"], report["failed"]) == (5, 0, [])
    frame = FrameSpec.from_dict(json.loads((out / "frame.json").read_text()))
    trusted = GeneratorConfig(frame=frame), render.visibility_check(BuiltFrame(frame), frame)
    for i in range(5):
        scene = scene_from_json((out / f"{i:05d}.json").read_text())
        # the scene a trusted worker makes with CLEVR's visibility rule, and it holds
        assert scene.stripped() == generate_scene(3, i, *trusted).stripped()
        assert enough_pixels(np_image(out / f"{i:05d}_masks.png"), len(scene), frame)
        assert (out / f"{i:05d}_dsl.py").read_text() == dsl_program(scene)
        assert np_image(out / f"{i:05d}.png").shape == (32, 32, 3)
        assert np_image(out / f"{i:05d}_masks.png").max() == len(scene.objects)
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.size == (5 * 32, 32)
    assert json.loads((out / "frame.json").read_text())["width"] == 32
    (out / "00002.png").unlink()
    again = make_dataset(out, 6, seed=3, address=farm.address)
    assert (again["rendered"], again["skipped"]) == (2, 4)


def np_image(path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img)


def test_render_free_steps_skip_the_render_and_score_the_scene(farm, client, target):
    """A preset without pixel terms, or ``render=False``: no image, no render, the
    read-back scene scored; the image terms of a pixel preset are unavailable."""
    good, half = (
        dsl_program(target.scene),
        dsl_program(type(target.scene)(target.scene.objects[:1])),
    )
    graph = client.step_many([good, half, BROKEN], target, preset="graph")
    assert [r.outcome for r in graph] == ["ok", "ok", "syntax_error"]
    assert all(r.image is None and "render" not in r.timings for r in graph)
    assert graph[0].reward == pytest.approx(1.0) and graph[0].scene is not None
    assert 0.0 < graph[1].reward < graph[0].reward and graph[2].reward == 0.0
    free = client.step(good, target, render=False)  # the default preset has pixel terms
    assert free.image is None and free.components["scene_graph"] == pytest.approx(1.0)
    assert {"lpips", "ssim", "edge_l2"} <= set(free.unavailable)
    assert free.reward == pytest.approx(1.0)  # the other terms are scaled up
    rendered = client.step(good, target)
    assert rendered.image is not None and "render" in rendered.timings
    with pytest.raises(ProtocolError, match="validity alone") as refused:
        client.step(good, target, preset="seed", render=False)
    assert refused.value.code == "bad_request"
