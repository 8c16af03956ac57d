"""The default preset ranks the ladder of programs as a person would, through a real farm.

50 seeded targets, 7 programs each (``bench.ladder``), scored by a LocalFarm (Workbench,
64 px) under its default preset: once where LPIPS is unavailable (the torch hub cache holds
an unreadable stand-in for the AlexNet checkpoint, so nothing is downloaded either) and once
with a SEEDED RANDOM AlexNet trunk written where the checkpoint goes (labelled: the real
weights cannot be downloaded here, and no test downloads them).
"""

from __future__ import annotations

import os

import pytest
from derender.bench.ladder import LEVELS, run_ladder
from derender.farm.local import LocalFarm
from derender.protocol.client import Client
from derender.reward.spec import DEFAULT_PRESET

torch = pytest.importorskip("torch")

from derender.reward import lpips  # noqa: E402

pytestmark = pytest.mark.timeout(900)
TARGETS = 50


def _torch_home(root, trunk: str):
    ckpt = root / "hub" / "checkpoints" / lpips.ALEXNET_FILE
    ckpt.parent.mkdir(parents=True)
    if trunk == "random-trunk":
        donor = lpips.build("random:0", "cpu")
        torch.save({f"features.{k}": v for k, v in donor.features.state_dict().items()}, ckpt)
    else:
        ckpt.write_bytes(b"not a checkpoint")  # unavailable, and never downloaded
    return root


@pytest.fixture(scope="module", params=["no-lpips", "random-trunk"])
def ladder(request, tmp_path_factory):
    home = _torch_home(tmp_path_factory.mktemp("torch_home"), request.param)
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)  # what the farm process (and its reward stage) sees
    try:
        farm = LocalFarm(workers=2, engine="workbench", size=64).start()
    finally:
        if old is None:
            os.environ.pop("TORCH_HOME")
        else:
            os.environ["TORCH_HOME"] = old
    try:
        with Client(farm.address, timeout=120) as client:
            report = run_ladder(client, preset=None, targets=TARGETS, seed=0)
    finally:
        farm.stop()
    print(f"\n[{request.param}]\n{report.table()}")
    return request.param, report


def test_the_farm_scores_with_the_default_preset(ladder):
    trunk, report = ladder
    assert report.preset == DEFAULT_PRESET and report.rewards.shape == (TARGETS, len(LEVELS))
    assert report.unavailable == (("lpips",) if trunk == "no-lpips" else ())


def test_oracle_is_the_maximum_of_every_target(ladder):
    _, report = ladder
    assert report.oracle_is_max, report.table()


def test_mean_rewards_fall_in_ladder_order(ladder):
    _, report = ladder
    assert report.ordered, report.table()


def test_reward_tracks_ladder_rank(ladder):
    _, report = ladder
    assert report.spearman >= 0.9, report.table()


def test_the_empty_program_earns_little(ladder):
    _, report = ladder
    assert report.empty_ratio <= 0.35, report.table()
    assert report.means["syntax_error"] == 0.0  # no render, no validity: nothing
