"""Each trainer adapter called exactly as its trainer calls it, against a live LocalFarm.

Call shapes (from the trainers' source): verl ``NaiveRewardManager`` calls
``compute_score(data_source=, solution_str=, ground_truth=, extra_info=)`` and its
``BatchRewardManager`` ``compute_score(data_sources=, solution_strs=, ground_truths=,
extra_infos=)`` with numpy object arrays; EasyR1's batch / sequential reward managers call
``reward_fn(list_of_dicts)`` / ``reward_fn(dict)`` with ``response``, ``response_length``,
``ground_truth``; TRL's ``GRPOTrainer._calculate_rewards`` calls ``reward_func(prompts=,
completions=, completion_ids=, trainer_state=, **columns)`` and gathers coroutine
functions; OpenRLHF calls ``reward_func(queries, prompts, labels)`` through ``ray.remote``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math

import numpy as np
import pytest
import torch
from derender.protocol.errors import OUTCOME_CODES
from derender.rl.integrations import core, easyr1, openrlhf, trl, verl

pytestmark = pytest.mark.timeout(300)


def _load_by_path(module, name):
    """The adapter file loaded as verl / EasyR1 / OpenRLHF load a custom reward file:
    ``spec_from_file_location(name, path)`` with no parent package."""
    spec = importlib.util.spec_from_file_location(name, module.__file__)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.fixture(scope="module")
def by_path():
    return {
        "verl": _load_by_path(verl, "custom_module"),
        "easyr1": _load_by_path(easyr1, "custom_reward_fn"),
        "openrlhf": _load_by_path(openrlhf, "reward_func"),
    }


def test_verl_per_sample(cases, by_path):
    compute_score = by_path["verl"].compute_score
    gt, good, bad = cases[0]
    kw = {"data_source": "derender/clevr", "ground_truth": gt, "extra_info": {"index": 0}}
    right = compute_score(solution_str=good, **kw)
    wrong = compute_score(solution_str=bad, **kw)
    broken = compute_score(solution_str="```python\nadd_object(\n```", **kw)
    assert right["score"] > wrong["score"] and right["scene_graph"] > 0.99 > wrong["scene_graph"]
    assert right["valid_program"] == 1.0 == wrong["valid_program"]
    assert broken["valid_program"] == 0.0 and broken["valid"] == 0.0
    assert broken["outcome_code"] == OUTCOME_CODES["syntax_error"] and right["outcome_code"] == 0
    # One schema for every outcome: the failed program's row has the same keys, worst values.
    assert list(broken) == list(right) and broken["scene_graph"] == 0.0 == broken["precise"]


def test_verl_batch(cases, by_path):
    gts = [c[0] for c in cases for _ in range(2)]
    sols = [x for c in cases for x in (c[1], c[2])]
    rows = by_path["verl"].compute_score_batch(
        data_sources=np.array(["derender/clevr"] * 4, dtype=object),
        solution_strs=sols,
        ground_truths=gts,
        extra_infos=np.array([{}] * 4, dtype=object),
    )
    assert len(rows) == 4 and len({tuple(r) for r in rows}) == 1  # same keys for all
    scores = [r["score"] for r in rows]
    assert scores[0] > scores[1] and scores[2] > scores[3]
    assert rows[0]["ssim"] > 0.99 and rows[2]["ssim"] > 0.99


def test_easyr1_batch_and_sequential(cases, by_path):
    compute_score = by_path["easyr1"].compute_score
    inputs = [
        {"response": c[k], "response_length": len(c[k]), "ground_truth": c[0]}
        for c in cases
        for k in (1, 2)
    ]
    scores = compute_score(inputs)
    assert isinstance(scores, list) and len(scores) == 4
    assert all({"overall", "format", "accuracy"} <= set(s) for s in scores)
    assert scores[0]["overall"] > scores[1]["overall"] and scores[0]["format"] == 1.0
    single = compute_score(inputs[0])
    assert isinstance(single, dict) and single["overall"] == pytest.approx(scores[0]["overall"])


def _trl_kwargs(cases):
    completions = [[{"role": "assistant", "content": c[k]}] for c in cases for k in (1, 2)]
    return {
        "prompts": [[{"role": "user", "content": "rebuild"}]] * 4,
        "completions": completions,
        "completion_ids": [[1, 2, 3]] * 4,
        "trainer_state": None,
        "ground_truth": [c[0] for c in cases for _ in range(2)],
        "image": [None] * 4,  # other dataset columns arrive too and are ignored
    }


def test_trl_sync_reward_func(cases):
    rewards = trl.derender_reward(**_trl_kwargs(cases))
    assert trl.derender_reward.__name__ == "derender_reward"
    assert not asyncio.iscoroutinefunction(trl.derender_reward)
    assert all(isinstance(r, float) for r in rewards) and len(rewards) == 4
    assert rewards[0] > rewards[1] and rewards[2] > rewards[3]


def test_trl_async_reward_func(cases):
    assert asyncio.iscoroutinefunction(trl.derender_reward_async)
    kwargs = _trl_kwargs(cases)

    async def trainer_loop():  # TRL gathers all async reward funcs of a step
        return await asyncio.gather(
            trl.derender_reward_async(**kwargs), trl.derender_reward_async(**kwargs)
        )

    first, second = asyncio.run(trainer_loop())
    assert first == pytest.approx(trl.derender_reward(**kwargs)) == second


def test_trl_logs_the_three_rates_through_its_hooks(cases):
    kwargs = _trl_kwargs(cases)
    kwargs["completions"][1] = [{"role": "assistant", "content": "```python\nadd_object(\n```"}]
    metrics, extra = {}, {}
    rewards = trl.derender_reward(
        **kwargs, log_metric=metrics.__setitem__, log_extra=extra.__setitem__
    )
    assert metrics["derender/valid_program"] == pytest.approx(0.75)  # one of four failed
    assert 0.0 < metrics["derender/structural_match"] <= 0.75
    assert 0.0 < metrics["derender/precise"] <= 0.75  # edge L2 stands in: no LPIPS weights
    assert extra["outcome"][1] == "syntax_error" and rewards[1] < rewards[0]


def test_trl_without_target_column_names_the_columns(cases):
    kwargs = _trl_kwargs(cases)
    del kwargs["ground_truth"]
    with pytest.raises(ValueError, match="ground_truth"):
        trl.derender_reward(**kwargs)


def test_openrlhf_reward_func(cases, by_path):
    prompt = "<|im_start|>user\nAnswer in ```python fences like ```python\nx = 1\n```<|im_end|>\n"
    prompts = [prompt] * 4
    queries = [prompt + c[k] + "<|im_end|>" for c in cases for k in (1, 2)]
    labels = [c[0] for c in cases for _ in range(2)]
    out = by_path["openrlhf"].reward_func(queries, prompts, labels)
    assert isinstance(out["rewards"], torch.Tensor) and out["rewards"].shape == (4,)
    r = out["rewards"].tolist()
    assert r[0] > r[1] and r[2] > r[3]
    assert out["extra_logs"]["ssim"][0] > 0.99
    assert torch.equal(out["scores"], out["rewards"])
    assert out["extra_logs"]["valid_program"].tolist() == [1.0] * 4


def test_evicted_or_unknown_target_id_is_an_error_not_a_zero(cases):
    with pytest.raises(core.RewardRequestError, match="unknown_target"):
        verl.compute_score("d", cases[0][1], "t-ffffffffffffffff")


def test_configure_overrides_the_environment(farm_address, cases):
    client = core.configure(address=farm_address, preset="scene")
    try:
        row = verl.compute_score("d", cases[0][1], cases[0][0])
        assert "scene_graph" in row and not math.isnan(row["scene_graph"])
    finally:
        client.close()
        core._default = None


def test_task_rows_feed_the_adapters(farm_address):
    from derender.protocol.client import Client
    from derender.rl.integrations.dataset import task_rows
    from derender.scenes import GeneratorConfig, dsl_program, generate_scene

    with Client(farm_address) as client:
        frame = client.info().frame
        seeded = list(task_rows(client, seed=5, count=2))
        small = GeneratorConfig(min_objects=2, max_objects=2)
        curriculum = list(task_rows(client, seed=5, count=1, config=small, style="hf"))
    assert [r["ground_truth"] for r in seeded] == [
        '{"target":{"seed":5,"index":0}}',
        '{"target":{"seed":5,"index":1}}',
    ]
    assert seeded[0]["prompt"][1]["content"][1]["type"] == "image_url"
    assert curriculum[0]["prompt"][1]["content"][1]["type"] == "image"
    scene = core.parse_ground_truth(curriculum[0]["ground_truth"]).scene
    assert len(scene) == 2
    oracle = [dsl_program(generate_scene(5, i, GeneratorConfig(frame=frame))) for i in (0, 1)]
    rows = [*seeded, *curriculum]
    rewards = trl.derender_reward(
        prompts=[r["prompt"] for r in rows],
        completions=[*oracle, dsl_program(scene)],
        ground_truth=[r["ground_truth"] for r in rows],
    )
    again = trl.derender_reward(
        prompts=[r["prompt"] for r in rows],
        completions=["", "", ""],
        ground_truth=[r["ground_truth"] for r in rows],
    )
    assert all(r > e for r, e in zip(rewards, again, strict=True))  # oracle beats empty
