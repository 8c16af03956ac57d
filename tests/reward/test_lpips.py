"""derender's LPIPS-Alex: equivalence with the lpips package, weight loading, unavailability.

The real AlexNet weights are absent on this machine (no internet), so every test that needs
a trunk uses a SEEDED RANDOM one ("random:<seed>") or writes one to a temporary torch hub
cache; the linear heads are always lpips' real v0.1 weights.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from derender.reward import lpips as ours  # noqa: E402
from derender.reward import preset, score  # noqa: E402

RNG = np.random.default_rng(5)


def _images(n: int = 3, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    a = RNG.random((n, size, size, 3))
    b = np.clip(a + 0.2 * RNG.standard_normal(a.shape), 0, 1)
    return a, b


def test_equivalence_with_real_lpips_where_it_imports(monkeypatch) -> None:
    try:
        import lpips
    except Exception as exc:  # here: torchvision's CUDA build fails against CPU torch
        assert "torchvision" in f"{type(exc).__name__}: {exc}", exc
        pytest.skip(f"lpips cannot be imported here ({type(exc).__name__}: {exc})")
    # The real weights, where this machine has (or may download) them.
    monkeypatch.undo()
    try:
        model = ours.build("torchvision", "cpu")
    except ours.LPIPSUnavailable as exc:
        pytest.skip(f"AlexNet trunk weights absent: {exc}")
    ref = lpips.LPIPS(net="alex", version="0.1", verbose=False)
    a, b = _images()
    expect = ref(*(torch.from_numpy(x).float().permute(0, 3, 1, 2) * 2 - 1 for x in (a, b)))
    np.testing.assert_allclose(ours.distance(model, a, b), expect.flatten().numpy(), atol=1e-5)


# Runs lpips' own code (ScalingLayer, normalize_tensor, linear heads, spatial average) with
# torchvision replaced by a module whose alexnet() returns OUR seeded trunk: this checks the
# preprocessing and head replication against lpips itself. Subprocess: the fake module must
# not leak into other tests.
SHIM = textwrap.dedent(
    """
    import json, sys, types
    import numpy as np, torch
    from derender.reward import lpips as ours

    model = ours.build("random:3", "cpu")
    class Alex:
        def __init__(self):
            self.features = ours.alexnet_features()
            self.features.load_state_dict(model.features.state_dict())
    models = types.ModuleType("torchvision.models")
    models.alexnet = lambda pretrained=False, **kw: Alex()
    tv = types.ModuleType("torchvision")
    tv.models = models
    sys.modules.update({"torchvision": tv, "torchvision.models": models})
    import lpips

    ref = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    rng = np.random.default_rng(0)
    a = rng.random((4, 64, 64, 3))
    b = np.clip(a + 0.3 * rng.standard_normal(a.shape), 0, 1)
    t = lambda x: torch.from_numpy(x).float().permute(0, 3, 1, 2)
    with torch.no_grad():
        expect = ref(t(a), t(b), normalize=True).flatten().tolist()
    print(json.dumps({"ours": ours.distance(model, a, b).tolist(), "lpips": expect}))
    """
)


def test_matches_lpips_package_code_with_our_trunk_substituted() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SHIM], capture_output=True, text=True, timeout=120, check=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert min(got["lpips"]) > 0.01  # non-trivial distances
    np.testing.assert_allclose(got["ours"], got["lpips"], rtol=1e-5, atol=1e-6)


def test_distance_is_zero_for_equal_images_and_grows_with_difference() -> None:
    model = ours.build("random:1", "cpu")
    a, b = _images(2)
    assert ours.distance(model, a, a) == pytest.approx([0.0, 0.0], abs=1e-7)
    mild = np.clip(a + 0.05 * RNG.standard_normal(a.shape), 0, 1)
    d_mild, d_strong = ours.distance(model, a, mild), ours.distance(model, a, b)
    assert (d_mild > 0).all() and (d_strong > d_mild).all()
    assert "RANDOM-TRUNK-seed1" in model.identity
    with pytest.raises(ValueError, match="trunk"):
        ours.build("imagenet")


def test_trunk_loads_from_the_torch_hub_cache(offline_torch_hub: Path) -> None:
    torch_home = offline_torch_hub
    # A stand-in checkpoint in torchvision's key layout (features.* and classifier.*).
    donor = ours.build("random:7", "cpu")
    state = {f"features.{k}": v for k, v in donor.features.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(4096, 9216)
    ckpt = torch_home / "hub" / "checkpoints" / ours.ALEXNET_FILE
    ckpt.parent.mkdir(parents=True)
    torch.save(state, ckpt)
    model = ours.build("torchvision", "cpu")
    assert ours.trunk_path() == ckpt
    assert f"trunk=alexnet-owt:{ours.file_digest(ckpt)}" in model.identity
    a, b = _images(2)
    np.testing.assert_allclose(ours.distance(model, a, b), ours.distance(donor, a, b), rtol=1e-6)


def test_missing_trunk_is_reported_once_and_scoring_goes_on(
    offline_torch_hub: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch_home = offline_torch_hub
    spec = preset("seed")
    a, b = _images(1)
    with caplog.at_level(logging.WARNING, logger="derender.reward.lpips"):
        first = score(a[0], b[0], spec=spec)
        again = score(a[0], a[0], spec=spec)
    warnings = [r for r in caplog.records if "LPIPS unavailable" in r.getMessage()]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert ours.ALEXNET_FILE in msg and str(torch_home / "hub" / "checkpoints") in msg
    assert first.unavailable == ("lpips",) and np.isnan(first.components["lpips"])
    assert spec.lpips_identity() == "unavailable"
    assert again.reward == pytest.approx(1.1)  # renormalised: the maximum is unchanged
    assert first.reward < again.reward


def test_lin_weights_are_found_without_importing_lpips() -> None:
    code = (
        "import sys; from derender.reward import lpips as l; p = l.lin_weights_path(); "
        "print(p.name, p.parent.name, 'lpips' in sys.modules)"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120, check=True)  # fmt: skip
    assert out.stdout.split() == ["alex.pth", "v0.1", "False"]


def test_a_truncated_trunk_file_is_unavailable_not_a_crash(offline_torch_hub: Path) -> None:
    ckpt = offline_torch_hub / "hub" / "checkpoints" / ours.ALEXNET_FILE
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(ours.LPIPSUnavailable, match=str(ckpt)):
        ours.build("torchvision", "cpu")
    assert ours.cached("torchvision", "cpu") is None
