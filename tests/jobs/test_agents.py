"""Baseline agents against a live LocalFarm, and the search agent's proposals."""

from __future__ import annotations

import random

import pytest
from derender.farm.local import LocalFarm
from derender.jobs.agents import OracleAgent, RandomAgent, SearchAgent, propose
from derender.protocol.client import Client
from derender.scenes import GeneratorConfig, Scene, generate_scene

pytestmark = pytest.mark.timeout(300)

CFG = GeneratorConfig(min_objects=3, max_objects=3)


@pytest.fixture(scope="module")
def setup():
    with (
        LocalFarm(workers=2, engine="workbench", size=64) as farm,
        Client(farm.address, timeout=300) as client,
    ):
        cfg = GeneratorConfig(min_objects=3, max_objects=3, frame=client.info().frame)
        target = client.reset(scene=generate_scene(7, 0, cfg), masks=False)
        yield client, target


def test_proposals_change_one_block_and_stay_valid():
    rng = random.Random(0)
    scene = generate_scene(0, 0, CFG)
    seen_counts = set()
    for _ in range(300):
        new = propose(rng, scene, CFG)
        assert isinstance(new, Scene) and CFG.min_objects <= len(new) <= CFG.max_objects
        for o in new.objects:
            assert abs(o.x) <= CFG.bounds and abs(o.y) <= CFG.bounds
            assert o.z == pytest.approx(o.radius)  # resting on the ground
        if len(new) == len(scene):
            changed = [a != b for a, b in zip(new.objects, scene.objects, strict=True)]
            assert sum(changed) <= 1
        seen_counts.add(len(new))
        scene = new
    assert seen_counts == {3}  # min == max objects: add/remove never break the bounds
    free = GeneratorConfig(min_objects=1, max_objects=6)
    counts = {len(propose(rng, generate_scene(1, 0, free), free)) for _ in range(200)}
    assert len(counts) >= 3  # add and remove do happen


def test_oracle_beats_random_and_search_climbs(setup):
    client, target = setup
    oracle = OracleAgent().solve(client, target)
    assert oracle.result.outcome == "ok" and oracle.renders == 1
    randoms = [RandomAgent(seed, CFG).solve(client, target).result.reward for seed in range(4)]
    search = SearchAgent(budget=64, batch=16, seed=0, config=CFG).solve(client, target)
    assert search.renders == 64
    assert [n for n, _ in search.curve] == [16, 32, 48, 64]
    best = [r for _, r in search.curve]
    assert best == sorted(best)  # best-so-far never gets worse
    assert search.result.reward == pytest.approx(best[-1])
    assert oracle.result.reward > search.result.reward > max(randoms)
    assert search.best_at(64) > search.best_at(16)  # it climbs beyond its prior samples


def test_search_is_reproducible(setup):
    client, target = setup
    a = SearchAgent(budget=20, batch=10, seed=3, config=CFG).solve(client, target)
    b = SearchAgent(budget=20, batch=10, seed=3, config=CFG).solve(client, target)
    assert a.script == b.script and a.curve == b.curve
    with pytest.raises(ValueError, match="budget"):
        SearchAgent(budget=0)
