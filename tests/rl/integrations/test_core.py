"""The shared adapter core without a farm: ground truths, configuration, the result row,
concurrency (against a real ZeroMQ socket that answers only when 8 steps are in flight) and
failing fast when nothing listens."""

from __future__ import annotations

import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import zmq
from derender.protocol import codec
from derender.protocol.errors import ServerUnreachable
from derender.protocol.messages import SceneTarget, SeedTarget, TargetRef
from derender.protocol.transport import split_envelope
from derender.rl.integrations import core
from derender.scenes import generate_scene, scene_to_clevr


@pytest.mark.parametrize(
    ("ground_truth", "expected"),
    [
        ('{"target": {"seed": 3, "index": 7}}', SeedTarget(3, 7)),
        ({"target": {"seed": 3}}, SeedTarget(3, 0)),
        ('{"seed": 5, "index": 1}', SeedTarget(5, 1)),
        ("t-0123456789abcdef", TargetRef("t-0123456789abcdef")),
        (b'{"target_id": "t-00"}', TargetRef("t-00")),
    ],
)
def test_parse_ground_truth(ground_truth, expected):
    assert core.parse_ground_truth(ground_truth) == expected


def test_scene_ground_truth_round_trips_through_json():
    scene = generate_scene(1, 2)
    gt = core.ground_truth_json(SceneTarget(scene))
    parsed = core.parse_ground_truth(gt)
    assert isinstance(parsed, SceneTarget)
    assert scene_to_clevr(parsed.scene)["objects"] == scene_to_clevr(scene)["objects"]
    assert json.loads(core.ground_truth_json(SeedTarget(4, 2))) == {
        "target": {"seed": 4, "index": 2}
    }


@pytest.mark.parametrize("bad", ["not json", '{"target": 3}', '{"seed": -1}', "[1, 2]", 17])
def test_bad_ground_truth_names_the_value(bad):
    with pytest.raises(ValueError, match="ground truth"):
        core.parse_ground_truth(bad)


def test_missing_address_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv(core.ADDRESS_VAR, raising=False)
    with pytest.raises(core.ConfigurationError, match="DERENDER_ADDRESS"):
        core.RewardClient()


def test_scored_metrics_are_the_components_code_and_flags():
    s = core.Scored(0.1, "syntax_error", {"ssim": 0.0, "lpips": 1.0, "valid": 0.0})
    assert s.metrics() == {
        "lpips": 1.0, "ssim": 0.0, "valid": 0.0, "outcome_code": 1.0,
        "valid_program": 0.0, "structural_match": 0.0, "precise": 0.0,
    }  # fmt: skip
    ok = core.Scored(0.9, "ok", {"ssim": 0.85, "lpips": math.nan, "edge_l2": 0.01})
    flags = ok.metrics()
    assert flags["valid_program"] == 1.0 == flags["structural_match"]
    assert flags["precise"] == 1.0  # LPIPS unavailable (NaN): edge L2 < 0.05 stands in


class BarrierServer:
    """A ROUTER that answers pings at once but holds every step until ``quorum`` steps are
    in flight: a client that sends one step at a time never gets an answer."""

    def __init__(self, quorum: int) -> None:
        self.quorum = quorum
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.address = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.most_in_flight = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _reply(self, envelope, req, body):
        self.sock.send_multipart([*envelope, *codec.encode({"id": req["id"], "ok": True, **body})])

    def _serve(self) -> None:
        held = []
        while not self._stop.is_set():
            if not self.sock.poll(50):
                continue
            envelope, body = split_envelope(self.sock.recv_multipart())
            req = codec.decode(body)
            if req["type"] == "ping":
                self._reply(envelope, req, {})
                continue
            held.append((envelope, req))
            self.most_in_flight = max(self.most_in_flight, len(held))
            if len(held) >= self.quorum:
                for env, r in held:
                    self._reply(env, r, {"outcome": "ok", "reward": 0.5, "components": {}})
                held = []

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_calls_from_many_threads_are_in_flight_together():
    server = BarrierServer(quorum=8)
    client = core.RewardClient(server.address, timeout=20.0)
    gt = core.ground_truth_json(SeedTarget(1, 0))
    try:
        with ThreadPoolExecutor(8) as pool:  # verl: one compute_score per executor thread
            results = list(pool.map(lambda i: client.score([f"x = {i}"], [gt]), range(8)))
        assert [r[0].reward for r in results] == [0.5] * 8
        assert server.most_in_flight == 8
    finally:
        client.close()
        server.close()


def test_nothing_at_the_address_fails_within_seconds_naming_it():
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.bind("tcp://127.0.0.1:*")
    address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    sock.close(linger=0)  # the port is free again: nothing listens there
    client = core.RewardClient(address, connect_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(ServerUnreachable, match="derender farm --bind") as err:
        client.score(["x = 1"], [core.ground_truth_json(SeedTarget(1, 0))])
    assert time.monotonic() - t0 < 10 and address in str(err.value)


def test_timeouts_come_from_the_environment_and_are_checked(monkeypatch):
    monkeypatch.setenv(core.TIMEOUT_VAR, "12")
    monkeypatch.setenv(core.CONNECT_TIMEOUT_VAR, "0.5")
    client = core.RewardClient("tcp://127.0.0.1:1")
    assert (client.timeout, client.connect_timeout) == (12.0, 0.5)
    monkeypatch.setenv(core.TIMEOUT_VAR, "soon")
    with pytest.raises(core.ConfigurationError, match="'soon'"):
        core.RewardClient("tcp://127.0.0.1:1")
