"""Reward throughput benchmark: pairs per second by image size and batch size.

Reports wall-clock pairs/s and pairs per CPU-second (all threads): on a shared machine the
second is the steadier number; wall pairs/s on an idle machine is about it times the cores
torch uses.

Pairs are synthetic uint8 images (a random base and a perturbed copy, so no metric takes a
shortcut on equal inputs). Each cell warms up once, then repeats ``score_batch`` until
``seconds`` have passed. With ``trunk="random:<seed>"`` LPIPS runs on a seeded random
AlexNet trunk: same cost as the real one, meaningless values; the output says so.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..reward.score import lpips_model, score_batch
from ..reward.spec import preset


def _pairs(
    size: int, n: int, group: int = 1, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """n (render, target) pairs; each run of ``group`` consecutive pairs shares a target."""
    rng = np.random.default_rng(seed)
    distinct = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    targets = [distinct[i // group] for i in range(n)]
    renders = []
    for t in targets:
        r = t.copy()
        y, x = rng.integers(0, size // 2, 2)
        r[y : y + size // 4, x : x + size // 4] = rng.integers(0, 256, 3, dtype=np.uint8)
        renders.append(r)
    return renders, targets


def run(
    sizes: Sequence[int] = (64, 128),
    batches: Sequence[int] = (1, 16, 256),
    preset_name: str = "seed",
    trunk: str = "random:0",
    seconds: float = 2.0,
    group: int = 1,
) -> dict[str, Any]:
    """Time every (size, batch) cell; returns a JSON-ready report.

    ``group``: candidates per target (1: all targets distinct, the worst case; an RL group,
    e.g. GRPO's 8 rollouts of one prompt, shares its target, whose LPIPS features, resize and
    edges are then computed once).
    """
    if group < 1:
        raise ValueError(f"group must be >= 1, got {group!r}")
    spec = preset(preset_name, lpips_trunk=trunk)
    model = lpips_model(spec) if "lpips" in spec.weights else None
    cells = []
    for size in sizes:
        for batch in batches:
            renders, targets = _pairs(size, batch, group)
            score_batch(renders, targets, spec)  # warm-up: caches, oneDNN kernels
            calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
            while True:
                score_batch(renders, targets, spec)
                calls += 1
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    break
            cpu = time.process_time() - cpu_start
            cells.append(
                {"size": size, "batch": batch, "pairs_per_s": calls * batch / elapsed,
                 "pairs_per_cpu_s": calls * batch / cpu, "calls": calls, "seconds": elapsed}
            )  # fmt: skip
    return {
        "preset": preset_name,
        "group": group,
        "spec": spec.to_dict(),
        "scoring_size": spec.size,
        "lpips": "unavailable (not timed)"
        if model is None and "lpips" in spec.weights
        else spec.lpips_identity(),
        "random_trunk": "lpips" in spec.weights and trunk.startswith("random:"),
        "device": str(model.shift.device) if model is not None else "numpy",
        "cells": cells,
    }


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of a :func:`run` report."""
    lines = [
        f"derender bench reward: preset={report['preset']} "
        f"(scored at {report['scoring_size']} px), device={report['device']}, "
        f"{report['group']} candidate(s) per target",
        f"LPIPS: {report['lpips']}",
    ]
    if report["random_trunk"]:
        lines.append("NOTE: LPIPS trunk is a SEEDED RANDOM AlexNet (timing only)")
    lines.append(f"{'input px':>8} {'batch':>6} {'pairs/s':>10} {'pairs/cpu-s':>12} {'calls':>6}")
    for c in report["cells"]:
        lines.append(
            f"{c['size']:>8} {c['batch']:>6} {c['pairs_per_s']:>10.1f} "
            f"{c['pairs_per_cpu_s']:>12.1f} {c['calls']:>6}"
        )
    return "\n".join(lines)
