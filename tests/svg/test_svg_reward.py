"""The element-level structural score and the SVG presets, on real renders."""

from __future__ import annotations

import pytest
from derender.reward import preset, score
from derender.reward.svg_elements import svg_elements_score
from derender.svg import SvgGeneratorConfig, generate
from derender.svg.generator import moved, recoloured, without
from derender.svg.render import render

CONFIG = SvgGeneratorConfig(min_shapes=4, max_shapes=4, overlap=0.0)


def test_structure_matches_shapes_and_charges_each_miss():
    comp = generate(9, 0, CONFIG)
    goal = render(comp.to_svg()).elements
    assert svg_elements_score(goal, goal) == pytest.approx(1.0)
    assert svg_elements_score(list(reversed(goal)), goal) == pytest.approx(1.0)  # order-free
    assert svg_elements_score(render(without(comp, 0).to_svg()).elements, goal) == pytest.approx(
        0.75
    )
    shifted = svg_elements_score(render(moved(comp, 1, 4, 0).to_svg()).elements, goal)
    painted = svg_elements_score(render(recoloured(comp, 1, "#123456").to_svg()).elements, goal)
    assert 0.75 < shifted < 1.0 and 0.75 < painted < 1.0
    assert svg_elements_score([], []) == 1.0 and svg_elements_score([], goal) == 0.0


@pytest.mark.parametrize("name", ["seed-svg", "svg-elements"])
def test_svg_presets_pay_the_maximum_only_for_the_ground_truth(name):
    spec = preset(name, lpips_trunk="random:0")
    assert spec.total_weight == pytest.approx(1.0)
    comp = generate(9, 1, CONFIG)
    goal = render(comp.to_svg())
    best = score(goal.image, goal.image, spec, render_masks=goal.masks, target_masks=goal.masks)
    assert best.unavailable in ((), ("svg_elements",)) and best.reward == pytest.approx(1.0)
    miss = render(without(comp, 0).to_svg())
    worse = score(miss.image, goal.image, spec, render_masks=miss.masks, target_masks=goal.masks)
    assert worse.reward < best.reward
