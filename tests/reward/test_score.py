"""score / score_batch, specs, presets and the acceptance orderings on 20 scenes.

Images come from the numpy painter in conftest (synthetic, not Blender renders). Specs that
weight LPIPS run with a SEEDED RANDOM trunk ("random:0") where LPIPS values are needed, as
the real AlexNet weights are absent here, and with the default ("torchvision", unavailable
here) where the renormalisation without LPIPS is under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from derender.protocol.errors import OUTCOME_CODES
from derender.reward import RewardSpec, preset, score, score_batch
from derender.reward.spec import PRESETS
from derender.scenes.programs import dsl_program

pytest.importorskip("torch")

# The CLEVR presets: these tests score CLEVR renders; the SVG environment's presets (their
# IoU needs the SVG masks, svg_elements the shape descriptors) are tested in tests/svg.
SVG_PRESETS = ("seed-svg", "svg-elements")
PRESET_NAMES = sorted(set(PRESETS) - set(SVG_PRESETS))


def _spec(name: str, lpips: bool) -> RewardSpec:
    return preset(name, lpips_trunk="random:0") if lpips else preset(name)


@pytest.mark.parametrize("name", PRESET_NAMES)
@pytest.mark.parametrize("lpips", [True, False], ids=["random-trunk", "no-lpips"])
def test_ground_truth_beats_near_miss_beats_random_on_20_scenes(
    name: str, lpips: bool, scenes20, synth
) -> None:
    spec = _spec(name, lpips)
    targets, renders, scenes, codes, refs, tscenes = [], [], [], [], [], []
    for i, scene in enumerate(scenes20):
        other = scenes20[(i + 7) % len(scenes20)]
        target = synth.draw(scene)[0]
        for cand in (scene, synth.near_miss(scene), other):
            targets.append(target)
            renders.append(synth.draw(cand)[0])
            scenes.append(cand)
            codes.append(dsl_program(cand))
            refs.append(dsl_program(scene))
            tscenes.append(scene)
    res = score_batch(renders, targets, spec, scenes=scenes, target_scenes=tscenes,
                      codes=codes, reference_codes=refs)  # fmt: skip
    r = np.array([x.reward for x in res]).reshape(20, 3)
    assert np.allclose(r[:, 0], spec.total_weight)  # ground truth: the maximum
    assert (r[:, 0] > r[:, 1]).all() and (r[:, 1] > r[:, 2]).all()
    # "Clearly lower": random loses at least 3× more than the near miss, on average.
    loss = spec.total_weight - r.mean(axis=0)
    assert loss[2] > 3 * loss[1] > 0
    assert all(x.unavailable == (() if lpips or "lpips" not in spec.weights else ("lpips",))
               for x in res)  # fmt: skip


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_component_moves_the_right_way(name: str, scenes20, synth) -> None:
    spec = RewardSpec(
        weights={k: 1.0 for k in ("lpips", "ssim", "mse", "iou", "edge_l2", "scene_graph")},
        size=PRESETS[name]["size"], lpips_trunk="random:0",
    )  # fmt: skip
    scene = scenes20[3]
    target, tmask = synth.draw(scene)
    o = scene.objects[0]
    recolored = scene.with_objects(
        (type(o)(o.shape, o.size, o.material, "cyan" if o.color != "cyan" else "red", o.x, o.y),
         *scene.objects[1:])
    )  # fmt: skip
    cases = {
        "same": scene,
        "shifted": synth.near_miss(scene, 0.6),
        "recolored": recolored,
        "missing": scene.with_objects(scene.objects[1:]),
    }
    res = {}
    for key, cand in cases.items():
        img, mask = synth.draw(cand)
        res[key] = score(img, target, spec, render_masks=mask, target_masks=tmask,
                         scene=cand, target_scene=scene)  # fmt: skip
    same = res["same"].components
    assert same["lpips"] == pytest.approx(0, abs=1e-7) and same["mse"] == 0.0
    assert same["ssim"] == pytest.approx(1.0) and same["iou"] == 1.0
    assert same["edge_l2"] == 0.0 and same["scene_graph"] == 1.0
    for key in ("shifted", "recolored", "missing"):
        c = res[key].components
        assert c["lpips"] > 0 and c["mse"] > 0 and c["ssim"] < 1 and c["scene_graph"] < 1
        assert c["edge_l2"] > 0 or key == "recolored"  # same outline, other colour
        assert c["iou"] < 1 or key == "recolored"  # same silhouette
        assert res[key].reward < res["same"].reward


def test_batch_and_single_agree(scenes20, synth) -> None:
    spec = preset("seed", lpips_trunk="random:0")
    targets = [synth.draw(s)[0] for s in scenes20[:8]]
    renders = [synth.draw(synth.near_miss(s))[0] for s in scenes20[:8]]
    # An RL group: three candidates against one target (the trunk sees that target once).
    targets[4] = targets[6] = targets[3].copy()
    renders[6] = synth.draw(scenes20[3])[0]
    renders[2] = None
    outcomes = ["ok"] * 8
    outcomes[2], outcomes[5] = "syntax_error", "runtime_error"
    batch = score_batch(renders, targets, spec, outcomes=outcomes)
    for i in range(8):
        single = score(renders[i], targets[i], spec, outcome=outcomes[i])
        assert single.reward == pytest.approx(batch[i].reward, abs=1e-6)
        assert single.components.keys() == batch[i].components.keys()
        for k, v in single.components.items():
            assert v == pytest.approx(batch[i].components[k], abs=1e-6)


def test_edge_l2_of_cached_targets_equals_a_fresh_computation(scenes20, synth) -> None:
    """The target edge cache is keyed by content and size: a target seen before, a new
    target of the same shape, and the same target at another size all score as computed
    from scratch."""
    from derender.reward import edges, image

    spec = preset("rlrf")
    targets = [synth.draw(s)[0] for s in scenes20[:3]]
    renders = [synth.draw(synth.near_miss(s))[0] for s in scenes20[:3]]

    def fresh(render, target, size):
        lr = image.luminance(image.prepare(render, size))
        lt = image.luminance(image.prepare(target, size))
        return float(edges.edge_l2(lr[None], lt[None])[0])

    for size in (spec.size, 64):
        sized = preset("rlrf", size=size)
        for _ in range(2):  # the second round reads every target's map from the cache
            got = score_batch(renders, targets, sized)
            for r, t, g in zip(renders, targets, got, strict=True):
                assert g.components["edge_l2"] == pytest.approx(fresh(r, t, size), abs=1e-12)
    assert len({g.components["edge_l2"] for g in got}) == 3


def test_failed_step_scores_the_validity_floor(synth, scenes20) -> None:
    target = synth.draw(scenes20[0])[0]
    spec = preset("seed", lpips_trunk="random:0")
    failed = score(None, target, spec, outcome="syntax_error")
    # Every component at the value whose term is 0, so the result has the usual keys.
    assert failed.reward == 0.0
    assert dict(failed.components) == {"lpips": 1.0, "mse": 1.0, "ssim": 0.0, "valid": 0.0}
    assert (failed.outcome, failed.outcome_code) == ("syntax_error", OUTCOME_CODES["syntax_error"])
    partial = score(target, target, spec, outcome="runtime_error")
    assert partial.reward == pytest.approx(1.1 - 0.1 * 0.5)
    hacked = score(target, target, spec, outcome="frame_tampered")
    assert hacked.reward == pytest.approx(1.0)
    # Without LPIPS the floor is rescaled like everything else: w_valid·v·(1.1 / 0.5).
    assert score(None, target, preset("seed"), outcome="ok").reward == pytest.approx(0.22)


def test_terms_without_inputs_are_unavailable_and_renormalised(synth, scenes20) -> None:
    spec = RewardSpec(weights={"mse": 0.5, "iou": 0.5}, size=64)
    img, mask = synth.draw(scenes20[0])
    bare = score(img, img, spec)
    assert bare.unavailable == ("iou",) and bare.reward == pytest.approx(1.0)
    assert np.isnan(bare.components["iou"])  # the key is there, its value unknown
    bg = (synth.background(128) * 255).round().astype(np.uint8)
    moved = synth.draw(synth.near_miss(scenes20[0], 0.6))[0]
    via_bg = score(moved, img, spec, background=bg)
    via_masks = score(moved, img, spec, render_masks=synth.draw(synth.near_miss(
        scenes20[0], 0.6))[1], target_masks=mask)  # fmt: skip
    assert via_bg.unavailable == () and 0 < via_bg.components["iou"] < 1
    assert via_bg.components["iou"] == pytest.approx(via_masks.components["iou"], abs=0.05)


def test_spec_hash_tracks_everything_that_changes_rewards(tmp_path) -> None:
    seed = preset("seed")
    assert seed.hash() == preset("seed").hash() and len(seed.hash()) == 16
    variants = [
        preset("seed", size=128),
        preset("seed", lpips_trunk="random:0"),
        RewardSpec.from_dict({"preset": "seed", "weights": {"ssim": 0.3}}),
        preset("rlrf"),
    ]
    assert len({seed.hash(), *(v.hash() for v in variants)}) == 5
    assert seed.lpips_identity() == "unavailable"  # no AlexNet weights on this machine
    path = tmp_path / "reward.toml"
    path.write_text('preset = "seed"\nsize = "native"\n[weights]\nlpips = 0.0\niou = 0.4\n')
    spec = RewardSpec.from_toml(path)
    assert spec.size is None and dict(spec.weights) == {
        "iou": 0.4, "mse": 0.2, "ssim": 0.2, "valid": 0.1}  # fmt: skip
    assert spec.lpips_identity() == "unused"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"weights": {"psnr": 1.0}}, "psnr"),
        ({"weights": {"mse": -1.0}}, "mse"),
        ({"weights": {"mse": 0.0}}, "at least one"),
        ({"preset": "fancy"}, "fancy"),
        ({"preset": "seed", "size": 31}, "size must be an int >= 32"),
        ({"preset": "seed", "colour": 1}, "colour"),
        ({"preset": "seed", "lpips_trunk": "imagenet"}, "'imagenet'"),
    ],
)
def test_bad_specs_are_rejected_by_name(data, match) -> None:
    with pytest.raises(ValueError, match=match):
        RewardSpec.from_dict(data)


def test_mismatched_shapes_and_lengths_are_rejected() -> None:
    spec = RewardSpec(weights={"mse": 1.0}, size=None)
    with pytest.raises(ValueError, match="differ in shape"):
        score(np.zeros((32, 32, 3)), np.zeros((32, 40, 3)), spec)
    lpips_native = RewardSpec(weights={"lpips": 1.0}, size=None, lpips_trunk="random:0")
    with pytest.raises(ValueError, match=r"at least 31 px, got \(24, 24\)"):
        score(np.zeros((24, 24, 3)), np.zeros((24, 24, 3)), lpips_native)
    with pytest.raises(ValueError, match="outcomes has 1 entries for 2 targets"):
        score_batch([None, None], [np.zeros((32, 32, 3))] * 2, spec, outcomes=["ok"])
