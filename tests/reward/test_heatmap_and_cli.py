"""The error heatmap and ``derender bench reward``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from derender import cli
from derender.reward import heatmap
from derender.reward.heatmap import UNDERLAY


def test_heatmap_shows_where_the_render_is_wrong(synth, scenes20) -> None:
    scene = scenes20[0]
    target, mask = synth.draw(scene)
    same = heatmap(target, target)
    assert same.shape == target.shape and same.dtype == np.uint8
    # Equal images: only the faint luma underlay, nothing brighter.
    assert same.max() <= UNDERLAY * 255 + 1
    moved, moved_mask = synth.draw(synth.near_miss(scene, 0.6))
    heat = heatmap(moved, target).astype(float).sum(axis=-1)
    changed = mask != moved_mask
    assert heat[changed].mean() > 3 * heat[~changed].mean()
    with pytest.raises(ValueError, match="differ in shape"):
        heatmap(target[:64], target)


def test_heatmap_scale_is_absolute_not_per_image() -> None:
    base = np.full((8, 8, 3), 0.5)
    small, large = base.copy(), base.copy()
    small[0, 0] += 0.1
    large[0, 0] += 0.4
    assert heatmap(small, base)[0, 0].sum() < heatmap(large, base)[0, 0].sum()


def test_bench_reward_command_writes_a_labelled_report(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "bench.json"
    argv = ["bench", "reward", "--sizes", "32", "--batches", "1", "3", "--seconds", "0.01",
            "--group", "2", "--json", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "SEEDED RANDOM AlexNet" in text
    report = json.loads(out.read_text())
    assert [(c["size"], c["batch"]) for c in report["cells"]] == [(32, 1), (32, 3)]
    assert all(c["pairs_per_s"] > 0 and c["calls"] >= 1 for c in report["cells"])
    assert report["random_trunk"] is True and "RANDOM-TRUNK" in report["lpips"]
    assert report["group"] == 2 and "2 candidate(s) per target" in text


def test_bench_command_is_shared_and_validates(capsys) -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["bench", "reward"]).target == "reward"
    assert cli.main(["bench", "reward", "--sizes", "8"]) == 2
    assert "sizes must be >= 16" in capsys.readouterr().err
    assert cli.main(["bench", "reward", "--sizes", "32", "--group", "0"]) == 2
    assert "group must be >= 1, got 0" in capsys.readouterr().err
