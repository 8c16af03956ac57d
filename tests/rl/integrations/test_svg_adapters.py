"""Every trainer adapter with ``env="svg"`` rows, called as its trainer calls it (the call
shapes are in test_adapters.py), against the same live farm, which serves both kinds: the
SVG ground truth makes the sample an SVG one, its answer is pulled from an ``svg`` fence and
scored with ``seed-svg``. Also the SVG task rows (the trainer layouts of an SVG dataset are
checked in tests/trainers, where ``datasets`` is installed)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from derender.protocol.client import Client
from derender.protocol.errors import OUTCOME_CODES
from derender.rl.integrations import core, dataset, trl
from derender.svg import SvgGeneratorConfig, generate

from .test_adapters import _load_by_path, by_path  # noqa: F401  (the fixture)

pytestmark = pytest.mark.timeout(300)


def _pairs(svg_cases):
    gts = [c[0] for c in svg_cases for _ in range(2)]
    answers = [c[k] for c in svg_cases for k in (1, 2)]
    return gts, answers


def test_verl_per_sample_and_batch(svg_cases, by_path):  # noqa: F811
    verl = by_path["verl"]
    gt, good, bad = svg_cases[0]
    kw = {"data_source": "derender/svg", "ground_truth": gt, "extra_info": {"index": 0}}
    right = verl.compute_score(solution_str=good, **kw)
    wrong = verl.compute_score(solution_str=bad, **kw)
    broken = verl.compute_score(solution_str="```svg\n<svg><rect\n```", **kw)
    assert right["score"] == pytest.approx(1.0)
    assert right["score"] > wrong["score"] > broken["score"]
    assert broken["outcome_code"] == OUTCOME_CODES["syntax_error"] and right["outcome_code"] == 0
    assert list(broken) == list(right) and "ssim" in right  # seed-svg's schema, every outcome
    gts, answers = _pairs(svg_cases)
    rows = verl.compute_score_batch(
        data_sources=np.array(["derender/svg"] * 4, dtype=object),
        solution_strs=answers,
        ground_truths=gts,
        extra_infos=np.array([{}] * 4, dtype=object),
    )
    scores = [r["score"] for r in rows]
    assert scores[0] > scores[1] and scores[2] > scores[3] and scores[0] == pytest.approx(1.0)


def test_easyr1_batch_and_sequential(svg_cases, by_path):  # noqa: F811
    compute_score = by_path["easyr1"].compute_score
    gts, answers = _pairs(svg_cases)
    inputs = [
        {"response": a, "response_length": len(a), "ground_truth": g}
        for a, g in zip(answers, gts, strict=True)
    ]
    scores = compute_score(inputs)
    assert scores[0]["overall"] > scores[1]["overall"] and scores[0]["format"] == 1.0
    assert compute_score(inputs[0])["overall"] == pytest.approx(scores[0]["overall"])


def test_trl_sync_and_async_reward_funcs(svg_cases):
    gts, answers = _pairs(svg_cases)
    kwargs = {
        "prompts": [[{"role": "user", "content": "draw"}]] * 4,
        "completions": [[{"role": "assistant", "content": a}] for a in answers],
        "completion_ids": [[1]] * 4,
        "trainer_state": None,
        "ground_truth": gts,
    }
    rewards = trl.derender_reward(**kwargs)
    assert rewards[0] > rewards[1] and rewards[2] > rewards[3]
    assert asyncio.run(trl.derender_reward_async(**kwargs)) == pytest.approx(rewards)


def test_openrlhf_reward_func(svg_cases, by_path):  # noqa: F811
    gts, answers = _pairs(svg_cases)
    prompt = "<|im_start|>user\nAnswer in one ```svg fence<|im_end|>\n"
    queries = [prompt + a + "<|im_end|>" for a in answers]
    out = by_path["openrlhf"].reward_func(queries, [prompt] * 4, gts)
    r = out["rewards"].tolist()
    assert isinstance(out["rewards"], torch.Tensor) and r[0] > r[1] and r[2] > r[3]
    assert out["extra_logs"]["valid_program"].tolist() == [1.0] * 4


def test_a_mixed_batch_scores_each_kind_with_its_own_extraction(svg_cases, cases):
    (svg_gt, svg_good, _), (clevr_gt, clevr_good, _) = svg_cases[0], cases[0]
    scored = core.score([svg_good, clevr_good], [svg_gt, clevr_gt])
    assert [s.outcome for s in scored] == ["ok", "ok"]
    assert scored[0].reward == pytest.approx(1.0) and "scene_graph" not in scored[0].components
    assert scored[1].components["scene_graph"] > 0.99  # the farm's CLEVR default preset


def test_svg_task_rows_feed_the_adapters(farm_address):
    small = SvgGeneratorConfig(min_shapes=2, max_shapes=2)
    with Client(farm_address) as client:
        rows = list(dataset.task_rows(client, seed=4, count=2, config=small, env="svg"))
        with pytest.raises(ValueError, match="text_only"):
            dataset.task_dataset(client, seed=4, count=1, env="svg", text_only=True)
        with pytest.raises(TypeError, match="SvgGeneratorConfig"):
            list(dataset.task_rows(client, seed=4, count=1, config=small))
    assert {r["data_source"] for r in rows} == {"derender/svg"}
    system = rows[0]["prompt"][0]["content"][0]["text"]
    assert "Canvas 64x64 px" in system and "```svg" in system
    documents = [core.parse_ground_truth(r["ground_truth"]).svg for r in rows]
    assert documents == [generate(4, i, small).to_svg() for i in (0, 1)]
    rewards = trl.derender_reward(
        prompts=[r["prompt"] for r in rows],
        completions=[f"```svg\n{d}\n```" for d in documents],
        ground_truth=[r["ground_truth"] for r in rows],
    )
    assert rewards == pytest.approx([1.0, 1.0])
