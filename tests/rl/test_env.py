"""The Gymnasium env against a live LocalFarm: check_env, multi-turn, curriculum, vector env."""

from __future__ import annotations

import warnings

import derender.rl.env  # noqa: F401  (registers the id)
import gymnasium as gym
import numpy as np
import pytest
from derender.farm.local import LocalFarm
from derender.protocol.errors import ServerUnreachable
from derender.reward.spec import DEFAULT_PRESET
from derender.rl.env import ENV_ID, DerenderEnv
from derender.scenes import dsl_program, universe
from gymnasium.utils.env_checker import check_env

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def address():
    with LocalFarm(workers=2, engine="workbench", size=64) as farm:
        yield farm.address


def test_make_single_step_passes_check_env(address):
    env = gym.make(ENV_ID, address=address, max_objects=4)
    try:
        base = env.unwrapped
        assert isinstance(base, DerenderEnv)
        assert base.action_space.max_length == 65536
        assert set(base.observation_space.spaces) == {"target", "frame"}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(base)
        assert [str(w.message) for w in caught] == []  # render_fps declared, nothing else
        obs, info = env.reset(seed=5)
        assert obs["target"].shape == (64, 64, 3) and obs["target"].std() > 0
        assert "64x64 px, engine workbench" in obs["frame"]
        obs, reward, terminated, truncated, info = env.step(dsl_program(base.target_scene))
        assert (terminated, truncated) == (True, False)
        assert info["outcome"] == "ok" and info["reward_components"]["ssim"] > 0.95
        assert info["preset"] == DEFAULT_PRESET and reward == pytest.approx(1.0, abs=1e-3)
        assert "timings" not in info
    finally:
        env.close()


def test_reset_is_seeded_and_options_pick_a_scene(address):
    env = DerenderEnv(address, max_objects=4)
    try:
        a, info_a = env.reset(seed=11)
        b, info_b = env.reset(seed=11)
        assert info_a["target_id"] == info_b["target_id"]
        assert np.array_equal(a["target"], b["target"])
        _, info_c = env.reset(options={"index": 3})
        _, info_d = env.reset(options={"index": 3})
        assert info_c["target_id"] == info_d["target_id"] != info_a["target_id"]
    finally:
        env.close()


def test_multi_turn_refinement_shows_render_and_heatmap(address):
    env = DerenderEnv(
        address, max_turns=3, reward_threshold=0.95, preset="scene", min_objects=3, max_objects=3
    )
    try:
        obs, _ = env.reset(seed=1)
        assert set(obs) == {"target", "frame", "render", "heatmap"}
        assert not obs["render"].any()  # nothing rendered yet
        scene = env.target_scene
        wrong = dsl_program(scene.with_objects(o.moved(dx=1.5) for o in scene.objects))
        obs, r1, term, trunc, info = env.step(wrong)
        assert (term, trunc, info["turn"]) == (False, False, 1)
        assert obs["render"].any() and obs["render"].shape == obs["heatmap"].shape
        assert env.observation_space.contains(obs)
        obs, r2, term, trunc, info = env.step("def broken(:")
        assert info["outcome"] == "syntax_error" and (term, trunc) == (False, False)
        obs, r3, term, trunc, info = env.step(dsl_program(scene))
        assert (term, trunc, info["turn"]) == (True, False, 3)
        assert r3 > r1 > r2 and info["preset"] == "scene" and r3 >= 0.95
        # the heatmap of the exact program is darker than that of the moved one
        env.reset(seed=1)
        heat_wrong = env.step(wrong)[0]["heatmap"].mean()
        heat_right = env.step(dsl_program(scene))[0]["heatmap"].mean()
        assert heat_right < heat_wrong
    finally:
        env.close()


def test_turn_limit_truncates(address):
    env = DerenderEnv(address, max_turns=2, reward_threshold=2.0, max_objects=3)
    try:
        env.reset(seed=2)
        assert env.step("")[2:4] == (False, False)
        assert env.step("")[2:4] == (False, True)
    finally:
        env.close()


def test_curriculum_knobs_shape_the_targets(address):
    env = DerenderEnv(
        address, min_objects=2, max_objects=2, shapes=("sphere", "cube"), holdout="cogent_b"
    )
    try:
        for seed in range(4):
            env.reset(seed=seed)
            scene = env.target_scene
            assert len(scene) == 2
            for o in scene.objects:
                assert o.color in universe.COGENT_B[o.shape]
    finally:
        env.close()
    with pytest.raises(ValueError, match="cogent_c"):
        DerenderEnv(address, holdout="cogent_c")
    with pytest.raises(ValueError, match="min_objects"):
        DerenderEnv(address, min_objects=5, max_objects=2)


def test_async_vector_env_of_four_shares_one_farm(address):
    envs = gym.vector.AsyncVectorEnv(
        [lambda: gym.make(ENV_ID, address=address, max_objects=3) for _ in range(4)]
    )
    try:
        obs, infos = envs.reset(seed=[10, 11, 12, 13])
        assert obs["target"].shape == (4, 64, 64, 3)
        assert len(set(infos["target_id"])) == 4
        programs = envs.call("oracle_program")
        actions = (*programs[:3], "")
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        assert terminated.all() and not truncated.any() and rewards[:3].min() > rewards[3]
        ssim = infos["reward_components"]["ssim"]  # nested info dicts are batched per key
        assert min(ssim[:3]) > 0.99 > ssim[3]
        assert list(infos["outcome"]) == ["ok", "ok", "ok", "ok"]
    finally:
        envs.close()


def test_embedded_farm_is_started_and_stopped_by_the_env():
    env = gym.make(ENV_ID, workers=1, size=64, max_objects=3)
    farm = env.unwrapped.farm
    try:
        assert farm is not None and farm.pid is not None
        pid = farm.pid
        env.reset(seed=0)
        _, reward, *_ = env.step(dsl_program(env.unwrapped.target_scene))
        assert reward == pytest.approx(1.0, abs=1e-3)  # the default preset's maximum
    finally:
        env.close()
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)


def test_an_address_where_nothing_answers_fails_within_seconds():
    import time

    import zmq

    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.bind("tcp://127.0.0.1:*")
    address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    sock.close(linger=0)
    t0 = time.monotonic()
    with pytest.raises(ServerUnreachable, match=address):
        DerenderEnv(address, connect_timeout=1.0)
    assert time.monotonic() - t0 < 10
