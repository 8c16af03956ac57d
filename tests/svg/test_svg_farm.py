"""The SVG environment end to end: an SVG-only farm (no Blender), its sandboxed worker,
the attack suite through it, fidelity of 100 seeded targets and the perturbation ladder."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from derender.farm.local import LocalFarm
from derender.protocol.client import Client
from derender.protocol.errors import BadRequest
from derender.svg import SvgGeneratorConfig, generate
from derender.svg.generator import moved, recoloured, without
from derender.svg.render import render

ATTACKS = sorted((Path(__file__).parent / "attacks").glob("*.svg"))
CANARY = Path("/tmp/derender-svg-canary")
CANARY_TEXT = "derender-canary-52e1: this must never reach a render"
EMPTY = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>'


@pytest.fixture(scope="module")
def farm():
    with LocalFarm(workers=0, target_workers=0, svg_workers=1, metrics_interval=0) as f:
        yield f


@pytest.fixture(scope="module")
def client(farm):
    with Client(farm.address, timeout=120) as c:
        yield c


def test_an_svg_only_farm_runs_sandboxed_and_says_what_it_serves(farm, client):
    status = client.status()
    assert [w["role"] for w in status["workers"]] == ["svg"]
    assert status["os_sandboxed"] is True
    info = client.info()
    assert info.envs == ("svg",)
    assert "<svg" in info.cheatsheets["svg"]
    with pytest.raises(BadRequest, match="svg"):
        client.reset(0)  # a clevr target: this farm has no Blender workers


def test_an_svg_step_that_names_no_preset_is_scored_with_the_svg_default(client):
    target = client.reset(3, env="svg")
    result = client.step(target.svg, target)
    assert result.preset == "seed-svg" and result.reward == pytest.approx(1.0, abs=1e-6)
    assert client.info().default_presets == {"svg": "seed-svg"}


def test_attacks_through_the_sandboxed_worker(client):
    """Every attack gets its outcome from the worker; the canary files on the host are
    never read (the sandbox does not even show them), the farm keeps serving."""
    for suffix in (".txt", ".png", ".svg", ".css", ".ttf"):
        CANARY.with_suffix(suffix).write_text(CANARY_TEXT)
    try:
        target = client.reset(1, env="svg")
        for path in ATTACKS:
            text = path.read_bytes().decode("utf-8", "surrogateescape")
            if len(text) > client.info().protocol["limits"]["max_script_chars"]:
                with pytest.raises(BadRequest, match="limit"):  # the wire's bound comes first
                    client.step(text, target)
                continue
            t0 = time.monotonic()
            result = client.step(text, target)
            assert result.outcome == path.name.split("--")[0], (path.name, result.message)
            assert result.image is None and result.reward == 0.0
            assert CANARY_TEXT not in result.message + result.stdout
            assert time.monotonic() - t0 < 10.0, path.name
        assert client.step(target.svg, target).outcome == "ok"  # the worker survived
    finally:
        for suffix in (".txt", ".png", ".svg", ".css", ".ttf"):
            CANARY.with_suffix(suffix).unlink(missing_ok=True)


def test_100_ground_truths_render_identically_and_score_the_maximum(client):
    targets = [client.reset(7, i, env="svg") for i in range(100)]
    for i, target in enumerate(targets):
        assert target.svg == generate(7, i).to_svg()
    for preset in ("seed-svg", "svg-elements"):
        results = client.step_many([t.svg for t in targets], targets, preset=preset)
        for target, result in zip(targets, results, strict=True):
            assert result.outcome == "ok", result.message
            np.testing.assert_array_equal(result.image, target.image)
            assert result.reward == pytest.approx(1.0)


@pytest.mark.parametrize("preset", ["seed-svg", "svg-elements"])
def test_the_perturbation_ladder_falls_monotonically(client, preset):
    config = SvgGeneratorConfig(min_shapes=4, max_shapes=4, overlap=0.0)
    for index in range(10):
        comp = generate(3, index, config)
        target = client.reset(svg=comp.to_svg())
        ladder = [
            comp,
            moved(comp, 0, 3, 2),
            recoloured(moved(comp, 0, 3, 2), 1, "#123456"),
            without(recoloured(moved(comp, 0, 3, 2), 1, "#123456"), 2),
        ]
        docs = [c.to_svg() for c in ladder] + [EMPTY, "<svg"]
        rewards = [r.reward for r in client.step_many(docs, [target] * len(docs), preset=preset)]
        assert rewards == sorted(rewards, reverse=True), (index, rewards)
        assert len(set(rewards)) == len(rewards), (index, rewards)


def test_renders_in_the_worker_match_renders_here(client):
    target = client.reset(5, env="svg")
    np.testing.assert_array_equal(target.image, render(target.svg).image)


def test_a_clients_svg_target_renders_in_the_sandboxed_worker_not_the_broker(client):
    """A target document is the client's XML: it is rendered by an SVG worker (its job
    count grows), and one the policy refuses is a typed error, not a broken farm."""

    def jobs() -> int:  # jobs the farm has dispatched to workers, all of them
        return client.status()["metrics"]["jobs"]

    before = jobs()
    doc = generate(9_191_919, 0, SvgGeneratorConfig()).to_svg()  # a seed no other test uses
    made = client.reset(svg=doc)
    assert jobs() == before + 1
    assert made.image.shape == (64, 64, 3)
    assert client.reset(svg=doc).target_id == made.target_id and jobs() == before + 1  # cached
    hostile = '<!DOCTYPE svg [<!ENTITY a "b">]><svg xmlns="http://www.w3.org/2000/svg"/>'
    with pytest.raises(BadRequest, match="refused"):
        client.reset(svg=hostile)
    assert client.step(doc, made).reward > 0.99  # the farm still serves
