"""verl 0.9.1: its own reward loop and reward manager, loading derender's function by path.

``RewardLoopManager.compute_rm_score`` (what ``main_ppo``'s trainer calls) runs on Ray
with two reward-loop worker actors that load ``reward.custom_reward_function.path`` and
call ``compute_score`` per response; the legacy ``BatchRewardManager`` calls
``compute_score_batch`` on the whole batch. Both get a hand-built ``DataProto`` whose
non-tensor rows come from ``to_verl`` (verl's parquet row layout), with valid and failed
responses mixed in both orders: the reward and every extra key must come back for every
response (before one result schema, a valid response followed by a failed one raised
``KeyError: 'mse'`` here, and the failed one first dropped the component keys).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(900)

FAILED = "```python\nadd_object(shape='cube',\n```"  # a syntax error
EXTRA_KEYS = {"score", "valid", "outcome_code", "valid_program", "structural_match", "precise"}


@pytest.fixture(scope="module")
def verl_rows(farm_env, tmp_path_factory):
    """Two verl rows written to parquet with ``to_verl`` and read back as verl reads them."""
    import datasets
    from derender.protocol.client import Client
    from derender.rl.integrations.dataset import task_dataset, to_verl

    with Client(farm_env) as client:
        ds = task_dataset(client, seed=8, count=2)
    path = tmp_path_factory.mktemp("verl") / "train.parquet"
    to_verl(ds).to_parquet(str(path))
    return datasets.load_dataset("parquet", data_files=str(path), split="train")


def test_to_verl_writes_verls_row_layout(verl_rows):
    row = verl_rows[0]
    assert row["data_source"] == "derender/clevr" and row["ability"] == "inverse_graphics"
    assert row["reward_model"] == {
        "style": "rule",
        "ground_truth": '{"target":{"seed":8,"index":0}}',
    }
    assert row["extra_info"]["index"] == 0 and row["extra_info"]["target_id"].startswith("t-")
    system, user = row["prompt"]
    assert system["role"] == "system" and user["content"].endswith("<image>")
    assert len(row["images"]) == 1 and row["images"][0]["bytes"][:4] == b"\x89PNG"


def _oracle(row, frame) -> str:
    from derender.rl.integrations import core
    from derender.scenes import GeneratorConfig, dsl_program, generate_scene

    spec = core.parse_ground_truth(row["reward_model"]["ground_truth"])
    scene = generate_scene(spec.seed, spec.index, GeneratorConfig(frame=frame))
    return f"Here it is:\n```python\n{dsl_program(scene)}```"


@pytest.fixture(scope="module")
def batches(farm_env, verl_rows):
    """(rows, responses, valid?) in two orders: valid first, failed first."""
    from derender.protocol.client import Client

    with Client(farm_env) as client:
        frame = client.info().frame
    good = [_oracle(verl_rows[0], frame), _oracle(verl_rows[1], frame)]
    rows = [verl_rows[0], verl_rows[1], verl_rows[0], verl_rows[1]]
    return {
        "valid-first": (rows, [good[0], good[1], FAILED, FAILED], [True, True, False, False]),
        "failed-first": (rows, [FAILED, FAILED, good[0], good[1]], [False, False, True, True]),
    }


def _data_proto(tokenizer, rows, responses):
    """A rollout batch as verl builds it: left-padded prompts, right-padded responses."""
    import torch
    from verl import DataProto

    pad = tokenizer.pad_token_id
    prompt = tokenizer("<|im_start|>user\nrebuild<|im_end|>\n")["input_ids"]
    ids = [tokenizer(r)["input_ids"] for r in responses]
    width = max(map(len, ids))
    resp = torch.full((len(ids), width), pad)
    mask = torch.zeros((len(ids), len(prompt) + width), dtype=torch.long)
    mask[:, : len(prompt)] = 1
    for i, seq in enumerate(ids):
        resp[i, : len(seq)] = torch.tensor(seq)
        mask[i, len(prompt) : len(prompt) + len(seq)] = 1
    prompts = torch.tensor([prompt] * len(ids))
    return DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": resp,
            "input_ids": torch.cat([prompts, resp], dim=1),
            "attention_mask": mask,
        },
        non_tensors={
            "data_source": np.array([r["data_source"] for r in rows], dtype=object),
            "reward_model": np.array([r["reward_model"] for r in rows], dtype=object),
            "extra_info": np.array([dict(r["extra_info"]) for r in rows], dtype=object),
        },
    )


@pytest.fixture(scope="module")
def reward_loop(farm_env, tokenizer_dir):
    """verl's RewardLoopManager with 2 Ray reward-loop workers, configured from verl's own
    reward.yaml with derender's function set by path."""
    import ray
    import verl
    from derender.rl.integrations import verl as adapter
    from omegaconf import OmegaConf
    from verl.experimental.reward_loop import RewardLoopManager

    reward = OmegaConf.load(f"{verl.__path__[0]}/trainer/config/reward/reward.yaml")
    reward.num_workers = 2
    reward.custom_reward_function.path = adapter.__file__
    reward.custom_reward_function.name = "compute_score"
    config = OmegaConf.create(
        {"reward": reward, "actor_rollout_ref": {"model": {"path": str(tokenizer_dir)}}}
    )
    config.actor_rollout_ref.model.tokenizer_path = None
    # DERENDER_ADDRESS reaches the reward workers through Ray's runtime_env, as in a real run.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"DERENDER_ADDRESS": farm_env}},
        log_to_driver=False,
    )
    try:
        yield RewardLoopManager(config)
    finally:
        ray.shutdown()


@pytest.mark.parametrize("order", ["valid-first", "failed-first"])
def test_reward_loop_scores_mixed_batches(order, reward_loop, batches, tokenizer_dir):
    from transformers import AutoTokenizer
    from verl.trainer.ppo.reward import extract_reward

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    rows, responses, valid = batches[order]
    out = reward_loop.compute_rm_score(_data_proto(tokenizer, rows, responses))
    scores, extra = extract_reward(out)
    totals = scores.sum(dim=1).tolist()
    for total, ok in zip(totals, valid, strict=True):
        assert total == pytest.approx(1.0, abs=1e-3) if ok else total == 0.0
    assert EXTRA_KEYS | {"scene_graph", "edge_l2", "ssim", "lpips"} <= set(extra)
    for key, values in extra.items():
        assert len(values) == len(responses), key
    assert list(extra["valid_program"]) == [float(v) for v in valid]
    assert list(extra["scene_graph"]) == pytest.approx([1.0 if v else 0.0 for v in valid])
    assert all(math.isnan(x) for x in extra["lpips"])  # no LPIPS weights here, for every row
    assert list(extra["outcome_code"]) == [0.0 if v else 1.0 for v in valid]


@pytest.mark.parametrize("order", ["valid-first", "failed-first"])
def test_legacy_batch_reward_manager_logs_equal_length_lists(order, batches, tokenizer_dir):
    from derender.rl.integrations import verl as adapter
    from transformers import AutoTokenizer
    from verl.utils.import_utils import load_extern_object
    from verl.workers.reward_manager.batch import BatchRewardManager

    compute_score_batch = load_extern_object(adapter.__file__, "compute_score_batch")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    manager = BatchRewardManager(tokenizer, num_examine=0, compute_score=compute_score_batch)
    rows, responses, valid = batches[order]
    out = manager(_data_proto(tokenizer, rows, responses), return_dict=True)
    totals = out["reward_tensor"].sum(dim=1).tolist()
    for total, ok in zip(totals, valid, strict=True):
        assert total == pytest.approx(1.0, abs=1e-3) if ok else total == 0.0
    lengths = {k: len(v) for k, v in out["reward_extra_info"].items()}
    assert set(lengths.values()) == {len(responses)} and EXTRA_KEYS <= set(lengths)
