"""Every result of a batch has the same keys, whatever its outcome (numpy painter images).

Trainers stack the keys of a batch (verl's reward loop takes the keys of the first result,
EasyR1 and OpenRLHF make one list per key), so a failed program must not drop or add a key.
LPIPS runs with a SEEDED RANDOM trunk ("random:0") where it must be available, and with the
default trunk (its weights absent on this machine) where it must be unavailable.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from derender.protocol.errors import OUTCOME_CODES, OUTCOMES, outcome_code
from derender.reward import preset, score_batch
from derender.reward.score import WORST
from derender.reward.spec import COMPONENTS, DEFAULT_PRESET, PRESETS, term
from derender.scenes.programs import dsl_program

pytest.importorskip("torch")

MIXED = ["ok", "syntax_error", "runtime_error", "ok", "poisoned", "frame_tampered"]


def _mixed_batch(spec, synth, scenes20, order):
    scene = scenes20[3]
    img, mask = synth.draw(scene)
    near = synth.draw(synth.near_miss(scene))
    outcomes = [MIXED[i] for i in order]
    # What rendered: ok, runtime_error (partial) and frame_tampered did; the others did not.
    rendered = [o in ("ok", "runtime_error", "frame_tampered") for o in outcomes]
    renders = [near[0] if r else None for r in rendered]
    masks = [near[1] if r else None for r in rendered]
    return score_batch(
        renders, [img] * len(order), spec, outcomes=outcomes,
        render_masks=masks, target_masks=[mask] * len(order),
        scenes=[synth.near_miss(scene) if r else None for r in rendered],
        target_scenes=[scene] * len(order),
        codes=[dsl_program(scene)] * len(order), reference_codes=[dsl_program(scene)] * len(order),
        elements=[[]] * len(order), target_elements=[[]] * len(order),  # svg-elements' input
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("lpips", [True, False], ids=["random-trunk", "no-lpips"])
@pytest.mark.parametrize("order", [range(6), range(5, -1, -1)], ids=["ok-first", "failed-first"])
def test_mixed_outcomes_share_one_schema(name, lpips, order, synth, scenes20) -> None:
    spec = preset(name, lpips_trunk="random:0") if lpips else preset(name)
    results = _mixed_batch(spec, synth, scenes20, list(order))
    keys = {frozenset(r.components) for r in results}
    assert keys == {frozenset({*spec.weights, "valid"})}
    missing = () if lpips or "lpips" not in spec.weights else ("lpips",)
    for r in results:
        assert r.unavailable == missing  # the same for every result of this machine
        assert r.outcome_code == OUTCOME_CODES[r.outcome] and math.isfinite(r.reward)
        for k in missing:
            assert math.isnan(r.components[k])
        if r.outcome in ("syntax_error", "poisoned"):  # did not render: the worst values
            for k in set(spec.weights) - {"valid", *missing}:
                assert r.components[k] == WORST[k] and term(k, WORST[k]) == 0.0


def test_worst_values_cover_every_component_and_score_zero() -> None:
    assert set(WORST) == set(COMPONENTS)
    assert all(term(k, v) == 0.0 for k, v in WORST.items())


def test_outcome_codes_are_positions_in_the_one_outcome_list() -> None:
    assert [OUTCOME_CODES[o] for o in OUTCOMES] == list(range(len(OUTCOMES)))
    assert outcome_code("ok") == 0 and outcome_code("poisoned") == OUTCOMES.index("poisoned")
    with pytest.raises(ValueError, match="'exploded'"):
        outcome_code("exploded")


def test_default_preset_is_named_and_tops_out_at_one() -> None:
    spec = preset(DEFAULT_PRESET)
    assert DEFAULT_PRESET in PRESETS and spec.total_weight == pytest.approx(1.0)
    img = np.zeros((64, 64, 3), np.uint8)
    (failed,) = score_batch([None], [img], outcomes=["syntax_error"])  # spec defaults to it
    assert failed.reward == 0.0 and set(failed.components) == {*spec.weights, "valid"}
