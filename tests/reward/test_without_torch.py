"""reward imports and scores its numpy parts where torch cannot be imported (the Blender GUI)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, logging, sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="LOG %(message)s")
    import numpy as np
    from derender.reward import RewardSpec, heatmap, preset, scene_graph_score, score
    from derender.scenes.generator import generate_scene

    rng = np.random.default_rng(0)
    a = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    b = a.copy(); b[10:30, 10:30] = 0
    ma = np.zeros((64, 64), np.int32); ma[5:20, 5:20] = 1
    mb = np.zeros((64, 64), np.int32); mb[5:20, 8:23] = 1
    spec = RewardSpec(weights={"mse": 1, "ssim": 1, "iou": 1, "edge_l2": 1}, size=64)
    r = score(b, a, spec, render_masks=ma, target_masks=mb)
    scene = generate_scene(seed=0, index=0)
    sg = scene_graph_score(scene, scene).score
    seed = score(b, a, preset("seed"))
    twice = score(b, a, preset("seed"))
    print(json.dumps({"components": dict(r.components), "sg": sg, "heat": heatmap(b, a).shape,
                      "seed_unavailable": seed.unavailable, "seed": seed.reward,
                      "torch_loaded": sys.modules.get("torch") is not None}))
    """
)


def test_numpy_parts_score_without_torch() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    lines = out.stdout.strip().splitlines()
    got = json.loads(lines[-1])
    c = got["components"]
    assert 0 < c["mse"] < 1 and 0 < c["ssim"] < 1 and 0 < c["edge_l2"] <= 1
    assert c["iou"] == 180 / 270  # 15×12 overlap of two 15×15 squares
    assert got["sg"] == 1.0 and got["heat"] == [64, 64, 3]
    assert got["seed_unavailable"] == ["lpips"] and 0 < got["seed"] < 1.1
    assert got["torch_loaded"] is False
    logs = [ln for ln in lines if ln.startswith("LOG") and "LPIPS unavailable" in ln]
    assert len(logs) == 1 and "torch cannot be imported" in logs[0]
