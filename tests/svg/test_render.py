"""The generator and the renderer: determinism, knobs, arrays, masks and descriptors."""

from __future__ import annotations

import numpy as np
import pytest
from derender.svg import SvgCanvas, SvgGeneratorConfig, generate
from derender.svg.generator import SvgGenerationError, moved, recoloured, without
from derender.svg.policy import SvgLimits
from derender.svg.render import render


def test_targets_are_a_pure_function_of_seed_and_index():
    assert generate(7, 3).to_svg() == generate(7, 3).to_svg()
    assert generate(7, 3).to_svg() != generate(7, 4).to_svg()
    assert generate(7, 3).to_svg() != generate(8, 3).to_svg()


def test_knobs_shape_the_compositions():
    config = SvgGeneratorConfig(min_shapes=4, max_shapes=4, shapes=("circle",), palette="grey")
    for i in range(20):
        comp = generate(1, i, config)
        assert len(comp.shapes) == 4
        assert {s.tag for s in comp.shapes} == {"circle"}
        assert {s.fill for s in comp.shapes} <= {"#000000", "#404040", "#808080", "#c0c0c0"}
    none = SvgGeneratorConfig(min_shapes=3, max_shapes=3, overlap=0.0, shapes=("rect",))
    for i in range(20):
        boxes = [s.box() for s in generate(2, i, none).shapes]
        for a in range(len(boxes)):
            for b in range(a):
                (x0, y0, x1, y1), (u0, v0, u1, v1) = boxes[a], boxes[b]
                assert min(x1, u1) <= max(x0, u0) or min(y1, v1) <= max(y0, v0)
    with pytest.raises(SvgGenerationError, match="palette"):
        SvgGeneratorConfig(palette="neon")
    with pytest.raises(SvgGenerationError, match="overlap"):
        generate(0, 0, SvgGeneratorConfig(min_shapes=60, max_shapes=60, overlap=0.0))


def test_every_shape_kind_renders_with_its_descriptor():
    for tag in ("circle", "rect", "ellipse", "polygon", "line", "path"):
        comp = generate(5, 0, SvgGeneratorConfig(min_shapes=1, max_shapes=1, shapes=(tag,)))
        result = render(comp.to_svg())
        assert result.outcome == "ok", result.message
        assert result.image.shape == (64, 64, 3) and result.image.dtype == np.uint8
        assert result.masks.dtype == np.int32 and 0 < result.masks.sum() < 64 * 64
        (element,) = result.elements
        assert element["tag"] == tag
        x0, y0, x1, y1 = comp.shapes[0].box()
        assert element["bbox"] == pytest.approx([x0, y0, x1, y1], abs=1e-6)
        # the background outside the mask is the canvas colour
        assert np.all(result.image[result.masks == 0] == 255)


def test_the_raster_is_the_canvas_whatever_the_document_declares():
    doc = '<svg xmlns="http://www.w3.org/2000/svg" width="4000" height="4000" viewBox="0 0 8 8">'
    result = render(doc + '<rect width="4" height="8" fill="#ff0000"/></svg>', SvgCanvas(32, 16))
    assert result.outcome == "ok"
    assert result.image.shape == (16, 32, 3)
    # viewBox 8×8 meets the 32×16 raster centred: x 8..24, the red half is x 8..16
    assert (result.image[8, 12] == [255, 0, 0]).all() and (result.image[8, 20] == 255).all()


def test_perturbations_change_the_pixels():
    comp = generate(11, 0, SvgGeneratorConfig(min_shapes=3, max_shapes=3, overlap=0.0))
    base = render(comp.to_svg()).image
    for variant in (moved(comp, 0, 3, 0), recoloured(comp, 1, "#123456"), without(comp, 2)):
        assert (render(variant.to_svg()).image != base).any()


def test_a_document_past_its_deadline_times_out():
    path = "M1 1" + " a3 3 0 1 1 2 2" * 400
    uses = "".join('<use href="#p"/>' for _ in range(30))
    doc = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><defs>'
        f'<path id="p" fill="none" stroke="black" d="{path}"/><g id="g">{uses}</g></defs>'
        + '<use href="#g"/>' * 30
        + "</svg>"
    )
    result = render(doc, limits=SvgLimits(deadline_s=0.05))
    assert result.outcome == "timeout", result.message
