"""The preset ladder: does a reward rank programs the way a person would?

For each seeded target scene it writes seven programs, best first:

1. ``oracle`` — the ground-truth DSL program;
2. ``moved`` — one object moved 0.3 m in a random direction on the ground;
3. ``wrong_color`` — one object of another colour;
4. ``one_missing`` — one object left out;
5. ``half_missing`` — ceil(n / 2) objects left out;
6. ``empty`` — the empty program (runs, renders the empty frame);
7. ``syntax_error`` — a program that does not parse.

:func:`run_ladder` scores every program through a real server (a farm or ``derender
serve``) under one preset and :func:`summarise` reduces the rewards to what a reward must
satisfy: the oracle is the maximum, the level means fall in ladder order, the Spearman
correlation between reward and ladder rank (over all programs) is high, and the empty
program earns a small fraction of the oracle's reward. ``derender bench ladder`` prints it.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..scenes import GeneratorConfig, Scene, dsl_program, generate_scene, universe

LEVELS: tuple[str, ...] = (
    "oracle", "moved", "wrong_color", "one_missing", "half_missing", "empty", "syntax_error",
)  # fmt: skip
MOVE_METRES = 0.3
SYNTAX_ERROR_PROGRAM = "add_object(shape='cube',\n"


def _moved(scene: Scene, i: int, rng: random.Random) -> Scene:
    """Object ``i`` moved MOVE_METRES in a random direction that stays within bounds."""
    obj = scene.objects[i]
    bound = universe.PLACEMENT_BOUNDS
    for _ in range(64):
        angle = rng.uniform(0.0, 2.0 * math.pi)
        dx, dy = MOVE_METRES * math.cos(angle), MOVE_METRES * math.sin(angle)
        if abs(obj.x + dx) <= bound and abs(obj.y + dy) <= bound:
            break
    else:  # unreachable for a point inside the bounds: some direction points inwards
        raise AssertionError(f"no in-bounds move for {obj}")
    objects = list(scene.objects)
    objects[i] = obj.moved(dx=dx, dy=dy)
    return scene.with_objects(objects)


def _recoloured(scene: Scene, i: int, rng: random.Random) -> Scene:
    obj = scene.objects[i]
    color = rng.choice([c for c in universe.COLORS if c != obj.color])
    objects = list(scene.objects)
    objects[i] = replace(obj, color=color, pixel_coords=None)
    return scene.with_objects(objects)


def _without(scene: Scene, drop: Sequence[int]) -> Scene:
    return scene.with_objects(o for k, o in enumerate(scene.objects) if k not in set(drop))


def ladder_programs(scene: Scene, seed: int) -> dict[str, str]:
    """The seven programs of :data:`LEVELS` for ``scene`` (``seed`` picks the edits)."""
    rng = random.Random(seed)
    n = len(scene)
    i = rng.randrange(n)
    half = rng.sample(range(n), math.ceil(n / 2))
    return {
        "oracle": dsl_program(scene),
        "moved": dsl_program(_moved(scene, i, rng)),
        "wrong_color": dsl_program(_recoloured(scene, i, rng)),
        "one_missing": dsl_program(_without(scene, [i])),
        "half_missing": dsl_program(_without(scene, half)),
        "empty": "",
        "syntax_error": SYNTAX_ERROR_PROGRAM,
    }


@dataclass(frozen=True)
class LadderReport:
    """Rewards per level (targets × levels) and the checks a default preset must pass."""

    preset: str
    rewards: np.ndarray  # (targets, len(LEVELS))
    unavailable: tuple[str, ...]

    @property
    def means(self) -> dict[str, float]:
        return {name: float(v) for name, v in zip(LEVELS, self.rewards.mean(axis=0), strict=True)}

    @property
    def spearman(self) -> float:
        """Spearman correlation of reward with ladder goodness over every program."""
        n_targets = self.rewards.shape[0]
        goodness = np.tile(-np.arange(len(LEVELS), dtype=np.float64), n_targets)
        return _spearman(self.rewards.reshape(-1), goodness)

    @property
    def oracle_is_max(self) -> bool:
        """The oracle earns at least as much as every other program of its target."""
        return bool(np.all(self.rewards[:, 0] >= self.rewards.max(axis=1) - 1e-9))

    @property
    def ordered(self) -> bool:
        means = list(self.means.values())
        return all(a > b for a, b in itertools.pairwise(means))

    @property
    def empty_ratio(self) -> float:
        means = self.means
        return means["empty"] / means["oracle"]

    def table(self) -> str:
        """A markdown table: one row per level (mean, std, min, max)."""
        lines = [
            f"preset `{self.preset}`, {self.rewards.shape[0]} targets"
            + (f", unavailable: {', '.join(self.unavailable)}" if self.unavailable else ""),
            "",
            "| level | mean | std | min | max |",
            "| --- | --- | --- | --- | --- |",
        ]
        for k, name in enumerate(LEVELS):
            col = self.rewards[:, k]
            lines.append(
                f"| {name} | {col.mean():.4f} | {col.std():.4f} | {col.min():.4f} | "
                f"{col.max():.4f} |"
            )
        lines += [
            "",
            f"oracle is max: {self.oracle_is_max}; means in order: {self.ordered}; "
            f"Spearman {self.spearman:.4f}; empty / oracle {self.empty_ratio:.4f}",
        ]
        return "\n".join(lines)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), 0-based."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def ladder_scenes(frame: Any, targets: int, seed: int) -> list[Scene]:
    """``targets`` seeded scenes in the server's frame."""
    config = GeneratorConfig(frame=frame)
    return [generate_scene(seed, index, config) for index in range(targets)]


def run_ladder(client: Any, preset: str | None, targets: int = 50, seed: int = 0) -> LadderReport:
    """Score every ladder program of ``targets`` seeded scenes through ``client``.

    ``client`` is a :class:`~derender.protocol.client.Client`; every program of a target is
    sent as one pipelined ``step_many`` (so the farm's workers share them).
    """
    info = client.info()
    scenes = ladder_scenes(info.frame, targets, seed)
    rewards = np.zeros((targets, len(LEVELS)))
    unavailable: set[str] = set()
    for t, scene in enumerate(scenes):
        target = client.reset(scene=scene, masks=False)
        programs = ladder_programs(scene, seed * 1_000_003 + t)
        results = client.step_many([programs[name] for name in LEVELS], target, preset=preset)
        for k, res in enumerate(results):
            rewards[t, k] = res.reward
            unavailable.update(res.unavailable)
    name = preset or info.default_preset
    return LadderReport(name, rewards, tuple(sorted(unavailable)))
