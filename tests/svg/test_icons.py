"""Icon targets: the bundled Tabler subset, its placement, and the generator's ``kind`` knob."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
from derender.reward import preset, score_batch
from derender.svg import SvgCanvas, SvgGeneratorConfig, generate, icons
from derender.svg.generator import SvgGenerationError, moved
from derender.svg.policy import check
from derender.svg.render import render

ICONS = SvgGeneratorConfig(kind="icons")
# sha256 of the default-kind targets below, as generated before icon targets existed
SHAPES_DIGEST = "34143e22efd22348ed5b316a6196ef24db51eddca1f375ab95873b7c2ff07dfe"


def test_the_subset_ships_as_package_data_with_its_licence():
    package = resources.files("derender.svg.icons")
    assert len(icons.names()) == 58 and {"star", "heart", "home", "bolt"} <= set(icons.names())
    licence = package.joinpath("LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Paweł Kuna" in licence
    assert all(package.joinpath(f"{n}.svg").is_file() for n in icons.names())


@pytest.mark.parametrize("name", icons.names())
def test_every_icon_passes_the_policy_and_draws_where_it_is_placed(name):
    check(icons.source(name))
    assert render(icons.source(name)).outcome == "ok"
    # the flattened paths draw what the file's paths draw under a <g transform>
    x, y, side = 5, 3, 48
    s = side / icons.VIEWBOX
    paint = 'fill="none" stroke="#4363d8" stroke-linecap="round" stroke-linejoin="round"'
    grouped = "".join(f'<path d="{d}"/>' for d in icons.paths(name))
    reference = render(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        f'<g transform="translate({x} {y}) scale({s})" stroke-width="2" {paint}>{grouped}</g></svg>'
    )
    placed = "".join(icons.place(name, x, y, side, "#4363d8", 2 * s))
    drawn = render(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        f"{placed}</svg>"
    )
    assert drawn.outcome == "ok" and drawn.masks.sum() > 50
    diff = np.abs(drawn.image.astype(int) - reference.image.astype(int))
    assert diff.max() <= 16 and diff.mean() < 0.1, f"{name}: flattened paths drift from the file"
    # (the renderer's descriptors leave out a path whose box is a straight line)
    assert 1 <= len(drawn.elements) <= len(icons.paths(name))
    for element in drawn.elements:  # descriptors land inside the icon's box on the canvas
        x0, y0, x1, y1 = element["bbox"]
        assert x - 3 <= x0 <= x1 <= x + side + 3 and y - 3 <= y0 <= y1 <= y + side + 3


def test_icon_targets_are_seeded_and_vary():
    first = [generate(4, i, ICONS).to_svg() for i in range(30)]
    assert first == [generate(4, i, ICONS).to_svg() for i in range(30)]
    assert len(set(first)) == 30 and first != [generate(5, i, ICONS).to_svg() for i in range(30)]
    shapes = [generate(4, i, ICONS).shapes for i in range(30)]
    assert all(len(s) == 1 and s[0].tag == "icon" for s in shapes)
    assert len({s[0].icon for s in shapes}) > 10 and len({s[0].geometry[2] for s in shapes}) > 1
    only = SvgGeneratorConfig(kind="icons", icons=["star", "moon"], palette="grey")
    assert {generate(1, i, only).shapes[0].icon for i in range(20)} == {"star", "moon"}
    big = SvgGeneratorConfig(canvas=SvgCanvas(200, 120), kind="icons")
    for i in range(20):
        x0, y0, x1, y1 = generate(2, i, big).shapes[0].box()
        assert 0 <= x0 and x1 <= 200 and 0 <= y0 and y1 <= 120 and x1 - x0 >= 40


def test_mixed_targets_are_icons_or_compositions():
    tags = [generate(3, i, SvgGeneratorConfig(kind="mixed")).shapes[0].tag for i in range(40)]
    assert "icon" in tags and any(t != "icon" for t in tags)


def test_the_default_targets_are_unchanged():
    digest = hashlib.sha256()
    for cfg in (
        SvgGeneratorConfig(),
        SvgGeneratorConfig(canvas=SvgCanvas(128, 96)),
        SvgGeneratorConfig(min_shapes=4, max_shapes=4, overlap=0.0),
    ):
        for seed in (0, 1, 9, 12345):
            for i in range(25):
                digest.update(generate(seed, i, cfg).to_svg().encode())
    assert digest.hexdigest() == SHAPES_DIGEST


@pytest.mark.parametrize("name", ["seed-svg", "svg-elements"])
def test_the_ground_truth_of_icon_targets_scores_the_maximum(name):
    spec = preset(name, lpips_trunk="random:0")
    goals = [render(generate(8, i, ICONS).to_svg()) for i in range(20)]
    truths = [render(generate(8, i, ICONS).to_svg()) for i in range(20)]  # the oracle's
    shifted = [render(moved(generate(8, i, ICONS), 0, 4, 3).to_svg()) for i in range(20)]
    for goal, truth in zip(goals, truths, strict=True):
        assert goal.outcome == truth.outcome == "ok" and goal.masks.sum() > 0
        assert np.array_equal(goal.image, truth.image) and goal.elements == truth.elements

    def rewards(candidates):
        return [r.reward for r in score_batch(
            [c.image for c in candidates], [g.image for g in goals], spec,
            render_masks=[c.masks for c in candidates], target_masks=[g.masks for g in goals],
            elements=[c.elements for c in candidates], target_elements=[g.elements for g in goals],
        )]  # fmt: skip

    best, worse = rewards(truths), rewards(shifted)
    assert best == pytest.approx([1.0] * 20)
    assert all(w < b for w, b in zip(worse, best, strict=True))


@pytest.mark.parametrize(
    ("knobs", "named"),
    [
        ({"kind": "glyphs"}, "'glyphs'"),
        ({"kind": "icons", "icons": ("star", "unicorn")}, "'unicorn'"),
        ({"kind": "mixed", "canvas": SvgCanvas(10, 64)}, "10x64"),
    ],
)
def test_bad_icon_knobs_name_the_value(knobs, named):
    with pytest.raises(SvgGenerationError, match=named):
        SvgGeneratorConfig(**knobs)


def test_icon_targets_need_no_renderer_dependency():
    code = (
        "import sys\n"
        "from derender.svg import SvgGeneratorConfig, generate\n"
        "generate(1, 0, SvgGeneratorConfig(kind='icons')).to_svg()\n"
        "print(sorted({'cairosvg', 'defusedxml', 'tinycss2'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
