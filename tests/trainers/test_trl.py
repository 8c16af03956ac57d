"""TRL: a real 2-step GRPOTrainer run on image prompts from ``task_dataset``, against a farm.

The model is the tiny random LLaVA of conftest. Its sampling is restricted to four tokens
("#", "(", newline, end of message), so every completion is a program that either parses
(comments only: it runs and renders the empty frame) or does not ("(" outside a comment),
and the batches mix valid and failed programs. The assertions are about what TRL logged:
the per-completion rewards it kept (the last step's) equal derender's own scores of those
completions, that step's ``rewards/derender_reward/mean`` and ``derender/valid_program``
are their mean reward and valid share, and every step logged the three figures.

The GRPO run runs once more on an ``env="svg"`` dataset (the same farm serves both kinds):
those four tokens never make an SVG document, so every completion is a syntax error, and
TRL's rewards must still be derender's SVG scores of them.
"""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def image_dataset(farm_env):
    from derender.protocol.client import Client
    from derender.rl.integrations.dataset import task_dataset

    with Client(farm_env) as client:
        return task_dataset(client, seed=3, count=1)


def test_task_dataset_is_what_grpo_takes(image_dataset):
    import datasets

    assert isinstance(image_dataset.features["image"], datasets.Image)
    row = image_dataset[0]
    assert row["image"].size == (64, 64)  # decoded to a PIL image by the feature
    user = row["prompt"][1]
    assert user["role"] == "user" and [p["type"] for p in user["content"]] == ["text", "image"]
    assert row["ground_truth"] == '{"target":{"seed":3,"index":0}}'


def test_text_only_dataset_describes_the_target_in_words(farm_env):
    from derender.protocol.client import Client
    from derender.rl.integrations.dataset import task_dataset
    from derender.scenes import GeneratorConfig, generate_scene

    with Client(farm_env) as client:
        ds = task_dataset(client, seed=3, count=1, text_only=True)
        frame = client.info().frame
    assert "image" not in ds.column_names
    system, user = ds[0]["prompt"]
    assert isinstance(user["content"], str) and "64x64 px" in system["content"]
    scene = generate_scene(3, 0, GeneratorConfig(frame=frame))
    for obj in scene.objects:
        assert f"a {obj.size} {obj.color} {obj.material} {obj.shape}" in user["content"]


@pytest.fixture(scope="module")
def svg_dataset(farm_env):
    from derender.protocol.client import Client
    from derender.rl.integrations.dataset import task_dataset

    with Client(farm_env) as client:
        return task_dataset(client, seed=3, count=1, env="svg")


def test_svg_task_dataset_is_what_grpo_takes(svg_dataset):
    from derender.rl.integrations import core
    from derender.rl.integrations.dataset import to_easyr1, to_verl

    row = svg_dataset[0]
    assert row["image"].size == (64, 64) and row["data_source"] == "derender/svg"
    assert "```svg" in row["prompt"][0]["content"][0]["text"]
    assert core.parse_ground_truth(row["ground_truth"]).svg.startswith("<svg")
    assert to_verl(svg_dataset)[0]["reward_model"]["ground_truth"] == row["ground_truth"]
    assert "Canvas 64x64 px" in to_easyr1(svg_dataset)[0]["prompt"]


@pytest.mark.parametrize("env", ["clevr", "svg"])
def test_two_grpo_steps_log_derender_rewards(
    env, tmp_path, farm_env, image_dataset, svg_dataset, tiny_vlm
):
    from derender.rl.integrations import core
    from derender.rl.integrations.trl import derender_reward
    from trl import GRPOConfig, GRPOTrainer

    model, processor = tiny_vlm
    tok = processor.tokenizer
    allowed = {tok.convert_tokens_to_ids(t) for t in ("#", "(", "Ċ")} | {tok.eos_token_id}
    args = GRPOConfig(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=12,
        learning_rate=1e-3,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
        save_strategy="no",
        log_completions=True,  # keeps the last step's completions and rewards
        generation_kwargs={"suppress_tokens": sorted(set(range(len(tok))) - allowed)},
    )
    dataset = svg_dataset if env == "svg" else image_dataset
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[derender_reward],
        args=args,
        train_dataset=dataset,
        processing_class=processor,
    )
    trainer.train()

    steps = [h for h in trainer.state.log_history if "rewards/derender_reward/mean" in h]
    assert len(steps) == 2
    # What TRL keeps of the last step (log_completions): each completion and its reward.
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in trainer._logs["completion"]]
    logged = list(trainer._logs["rewards"]["derender_reward"])
    assert len(texts) == len(logged) == 4  # the last step's 4 generations of the one prompt
    truth = core.score(texts, [dataset[0]["ground_truth"]] * len(texts))
    assert logged == pytest.approx([s.reward for s in truth], abs=1e-6)
    outcomes = {s.outcome for s in truth}
    # CLEVR: valid and failed programs mixed; SVG: "#", "(" and newlines are never SVG
    assert outcomes == ({"syntax_error"} if env == "svg" else {"ok", "syntax_error"}), outcomes
    last = steps[-1]
    assert last["rewards/derender_reward/mean"] == pytest.approx(sum(logged) / 4, abs=1e-5)
    assert last["derender/valid_program"] == pytest.approx(
        sum(s.outcome == "ok" for s in truth) / 4
    )
    # CLEVR: edge L2 stands in for missing LPIPS weights; seed-svg has only LPIPS for it
    precise_known = env == "clevr" or not math.isnan(truth[0].components.get("lpips", math.nan))
    for h in steps:  # every step logged the three figures
        assert 0.0 <= h["derender/structural_match"] <= h["derender/valid_program"] <= 1.0
        if not precise_known:  # seed-svg has no edge L2 to stand in: the flag is left out
            assert "derender/precise" not in h
            continue
        assert 0.0 <= h["derender/precise"] <= 1.0  # edge L2 < 0.05 stands in for LPIPS here
