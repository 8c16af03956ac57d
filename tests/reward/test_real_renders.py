"""The reward orderings on real Blender renders (Workbench, 128 px, 10 scenes).

Uses the render core (``addon.frame``, ``addon.build``, ``addon.render``) when it is there;
the reward package itself never imports bpy. The candidate's Scene stands in for the
read-back (what was built is what would be read back).
"""

from __future__ import annotations

import numpy as np
import pytest
from derender.reward import RewardSpec, preset, score_batch
from derender.scenes.frame import FrameSpec
from derender.scenes.generator import generate_scene

pytest.importorskip("bpy")
pytest.importorskip("torch")
frame = pytest.importorskip("derender.addon.frame")
build = pytest.importorskip("derender.addon.build")
render = pytest.importorskip("derender.addon.render")

SPEC = FrameSpec(width=128, height=128, engine="workbench", samples=8)


def _render(built_frame, scene) -> tuple[np.ndarray, np.ndarray]:
    built_frame.reset(SPEC)
    objects = build.build(scene)
    img, masks = render.render_image(SPEC), render.render_masks(objects, SPEC)
    built_frame.reset(SPEC)
    return img, masks


@pytest.fixture(scope="module")
def rendered(synth):
    scenes = [generate_scene(seed=11, index=i) for i in range(10)]
    built_frame = frame.BuiltFrame(SPEC)
    rows = []
    for i, scene in enumerate(scenes):
        for cand in (scene, synth.near_miss(scene), scenes[(i + 3) % len(scenes)]):
            rows.append((scene, cand, *_render(built_frame, scene), *_render(built_frame, cand)))
    built_frame.reset(SPEC)
    empty = render.render_image(SPEC)
    return rows, empty


@pytest.mark.parametrize("name", ["seed", "rlrf", "scene"])
def test_real_renders_order_truth_near_miss_random(name: str, rendered) -> None:
    rows, empty = rendered
    spec = preset(name, lpips_trunk="random:0")  # SEEDED RANDOM trunk: weights absent
    res = score_batch(
        [r[4] for r in rows], [r[2] for r in rows], spec,
        render_masks=[r[5] for r in rows], target_masks=[r[3] for r in rows],
        scenes=[r[1] for r in rows], target_scenes=[r[0] for r in rows],
        codes=["add_object()"] * len(rows), reference_codes=["add_object()"] * len(rows),
    )  # fmt: skip
    r = np.array([x.reward for x in res]).reshape(-1, 3)
    assert np.allclose(r[:, 0], spec.total_weight)
    assert (r[:, 0] > r[:, 1]).all() and (r[:, 1] > r[:, 2]).all()
    assert empty.shape == rows[0][2].shape


def test_background_difference_iou_tracks_mask_iou(rendered) -> None:
    rows, empty = rendered
    spec = RewardSpec(weights={"iou": 1.0}, size=None)
    kw = {"spec": spec}
    via_masks = score_batch([r[4] for r in rows], [r[2] for r in rows],
                            render_masks=[r[5] for r in rows],
                            target_masks=[r[3] for r in rows], **kw)  # fmt: skip
    via_bg = score_batch([r[4] for r in rows], [r[2] for r in rows],
                         backgrounds=[empty] * len(rows), **kw)  # fmt: skip
    m = np.array([x.components["iou"] for x in via_masks]).reshape(-1, 3)
    b = np.array([x.components["iou"] for x in via_bg]).reshape(-1, 3)
    assert (m[:, 0] == 1).all() and (b[:, 0] == 1).all()
    assert (b[:, 2] < b[:, 1]).all() and (m[:, 2] < m[:, 1]).all()
    assert np.corrcoef(m.ravel(), b.ravel())[0, 1] > 0.8
