"""Baseline agents against a live LocalFarm, and the search agent's proposals."""

from __future__ import annotations

import random

import pytest
from derender.farm.local import LocalFarm
from derender.jobs.agents import OracleAgent, RandomAgent, SearchAgent, propose, propose_svg
from derender.protocol.client import Client
from derender.scenes import GeneratorConfig, Scene, generate_scene
from derender.svg import SvgGeneratorConfig, generate

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


SVG_CFG = SvgGeneratorConfig(min_shapes=2, max_shapes=4)


def test_svg_proposals_edit_one_element_and_keep_the_knobs():
    rng = random.Random(1)
    comp = generate(0, 0, SVG_CFG)
    counts = set()
    for _ in range(300):
        new = propose_svg(rng, comp, SVG_CFG)
        assert SVG_CFG.min_shapes <= len(new.shapes) <= SVG_CFG.max_shapes
        if len(new.shapes) == len(comp.shapes):
            assert sum(a != b for a, b in zip(new.shapes, comp.shapes, strict=True)) <= 1
        counts.add(len(new.shapes))
        comp = new
    assert counts == {2, 3, 4}  # add and remove happen, within the bounds


def test_svg_baselines_oracle_search_random():
    with (
        LocalFarm(workers=0, target_workers=0, svg_workers=1, metrics_interval=0) as farm,
        Client(farm.address, timeout=300) as client,
    ):
        target = client.reset(svg=generate(9, 0, SVG_CFG).to_svg(), masks=False)
        oracle = OracleAgent().solve(client, target)
        assert oracle.result.outcome == "ok" and oracle.result.preset == "seed-svg"
        assert oracle.result.reward == pytest.approx(1.0)
        randoms = [
            RandomAgent(seed, SVG_CFG, env="svg").solve(client, target).result.reward
            for seed in range(4)
        ]
        search = SearchAgent(budget=96, batch=16, seed=0, config=SVG_CFG, env="svg")
        found = search.solve(client, target)
        again = SearchAgent(96, 16, 0, SVG_CFG, env="svg").solve(client, target)
    assert found.script.startswith("<svg") and found.script == again.script
    best = [r for _, r in found.curve]
    assert best == sorted(best) and found.renders == 96
    assert oracle.result.reward > found.result.reward > max(randoms)
    assert found.best_at(96) > found.best_at(16)  # it climbs beyond its prior samples
    with pytest.raises(TypeError, match="SvgGeneratorConfig"):
        SearchAgent(env="svg", config=CFG)
