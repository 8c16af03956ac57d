"""``derender/SVG-v0`` against a live SVG-only LocalFarm (no Blender): check_env without
warnings, the oracle document, multi-turn refinement, seeding and the curriculum knobs."""

from __future__ import annotations

import warnings

import derender.rl.env  # noqa: F401  (registers the ids)
import gymnasium as gym
import numpy as np
import pytest
from derender.farm.local import LocalFarm
from derender.rl.env import SVG_ENV_ID, DerenderEnv
from derender.svg import generate
from derender.svg.generator import moved
from gymnasium.utils.env_checker import check_env

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def address():
    with LocalFarm(workers=0, target_workers=0, svg_workers=1, metrics_interval=0) as farm:
        yield farm.address


@pytest.mark.parametrize("max_turns", [1, 3])
def test_svg_env_passes_check_env_without_warnings(address, max_turns):
    env = gym.make(SVG_ENV_ID, address=address, max_turns=max_turns)
    try:
        base = env.unwrapped
        assert isinstance(base, DerenderEnv) and base.env == "svg"
        keys = {"target", "frame"} | ({"render", "heatmap"} if max_turns > 1 else set())
        assert set(base.observation_space.spaces) == keys
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(base)
        assert [str(w.message) for w in caught] == []
    finally:
        env.close()


def test_single_step_oracle_document_scores_the_maximum(address):
    env = gym.make(SVG_ENV_ID, address=address)
    try:
        obs, info = env.reset(seed=3)
        assert obs["target"].shape == (64, 64, 3) and obs["target"].std() > 0
        assert obs["frame"].startswith("Canvas 64x64 px")
        document = env.unwrapped.oracle_program()
        assert document.startswith("<svg")
        obs, reward, terminated, truncated, info = env.step(document)
        assert (terminated, truncated) == (True, False)
        assert info["outcome"] == "ok" and info["preset"] == "seed-svg"
        assert reward == pytest.approx(1.0, abs=1e-6)
        _, bad, *_ = env.step("<svg")
        assert bad < reward
    finally:
        env.close()


def test_multi_turn_refinement_and_seeded_resets(address):
    env = DerenderEnv(address, env="svg", max_turns=3, reward_threshold=0.999)
    try:
        a, info_a = env.reset(seed=8)
        b, info_b = env.reset(seed=8)
        assert info_a["target_id"] == info_b["target_id"]
        assert np.array_equal(a["target"], b["target"]) and not a["render"].any()
        _, info_c = env.reset(options={"index": 4})
        assert info_c["target_id"] != info_a["target_id"]
        comp = generate(0, 4)
        assert env.oracle_program() == comp.to_svg()
        obs, r1, term, trunc, info = env.step(moved(comp, 0, 6, 4).to_svg())
        assert (term, trunc, info["turn"]) == (False, False, 1) and obs["render"].any()
        assert env.observation_space.contains(obs)
        obs, r2, term, trunc, info = env.step("<svg><bad")
        assert info["outcome"] == "syntax_error" and (term, trunc) == (False, False)
        obs, r3, term, trunc, info = env.step(comp.to_svg())
        assert (term, trunc) == (True, False) and r3 > r1 > r2
        own = (
            '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
            '<rect width="9" height="9"/></svg>'
        )
        obs, _ = env.reset(options={"svg": own})
        assert obs["target"][:9, :9].max() == 0 and obs["target"][20:, 20:].min() == 255
    finally:
        env.close()


def test_svg_curriculum_knobs_shape_the_targets(address):
    knobs = {"min_shapes": 1, "max_shapes": 1, "shapes": ("circle",)}
    env = DerenderEnv(address, env="svg", svg_curriculum=knobs)
    try:
        for seed in range(3):
            env.reset(seed=seed)
            document = env.oracle_program()
            assert document.count("<circle") == 1 and "<rect" not in document
    finally:
        env.close()
    with pytest.raises(ValueError, match="shapes"):
        DerenderEnv(address, env="svg", svg_curriculum={"shapes": ("star",)})
    with pytest.raises(ValueError, match="'glyphs'"):
        DerenderEnv(address, env="svg", svg_curriculum={"kind": "glyphs"})


def test_icon_curriculum_targets_are_icons_and_the_oracle_scores_the_maximum(address):
    knobs = {"kind": "icons", "icons": ["star", "heart"], "palette": "grey"}
    env = DerenderEnv(address, env="svg", svg_curriculum=knobs)
    try:
        for seed in range(3):
            obs, _ = env.reset(seed=seed)
            document = env.oracle_program()
            assert obs["target"].std() > 0 and 'stroke-linecap="round"' in document
            assert "<circle" not in document and "<rect" not in document
            _, reward, *_ = env.step(document)
            assert reward == pytest.approx(1.0, abs=1e-6)
    finally:
        env.close()
    with pytest.raises(ValueError, match="env"):
        DerenderEnv(address, env="vector")


def test_embedded_svg_farm_starts_no_blender_and_stops_on_close():
    env = gym.make(SVG_ENV_ID, workers=1, size=32)
    farm = env.unwrapped.farm
    try:
        roles = [w["role"] for w in farm.status()["workers"]]
        assert roles == ["svg"]  # an SVG-only farm: no step or target worker, no Blender
        obs, _ = env.reset(seed=0)
        assert obs["target"].shape == (32, 32, 3)
    finally:
        env.close()
    assert env.unwrapped.farm is None and farm.pid is None
