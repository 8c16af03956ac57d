"""Exact Hungarian matching and the scene-graph reward."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from derender.reward import scene_graph_score
from derender.reward.assignment import linear_sum_assignment
from derender.scenes.generator import generate_scene
from derender.scenes.model import Scene, SceneObject


def brute_force(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        perms = itertools.permutations(range(m), n)
        return min(sum(cost[i, p[i]] for i in range(n)) for p in perms)
    perms = itertools.permutations(range(n), m)
    return min(sum(cost[p[j], j] for j in range(m)) for p in perms)


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (5, 5), (6, 6), (2, 6), (6, 3), (4, 5)])
def test_hungarian_is_exact_against_brute_force(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for trial in range(40):
        # Integer costs make ties (the hard case for augmenting paths) common.
        cost = rng.integers(0, 4, shape).astype(float) if trial % 2 else rng.random(shape)
        rows, cols = linear_sum_assignment(cost)
        assert len(rows) == min(shape)
        assert len(set(rows.tolist())) == len(set(cols.tolist())) == min(shape)
        assert cost[rows, cols].sum() == pytest.approx(brute_force(cost), abs=1e-12)


def test_hungarian_handles_empty_and_rejects_bad_input() -> None:
    rows, cols = linear_sum_assignment(np.zeros((0, 4)))
    assert rows.size == cols.size == 0
    with pytest.raises(ValueError, match="finite"):
        linear_sum_assignment(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="2-D"):
        linear_sum_assignment(np.zeros(3))


def test_hungarian_beats_greedy_where_greedy_fails() -> None:
    cost = np.array([[1.0, 2.0], [2.0, 100.0]])  # greedy takes (0,0), forcing (1,1)
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() == 4.0


@pytest.fixture
def target() -> Scene:
    return generate_scene(seed=3, index=1)


def test_identical_scenes_score_one_in_any_order(target: Scene) -> None:
    s = scene_graph_score(target, target)
    assert (s.precision, s.recall, s.f1, s.attribute_accuracy, s.score) == (1, 1, 1, 1, 1)
    assert s.mean_position_error == 0.0
    shuffled = target.with_objects(reversed(target.objects))
    assert scene_graph_score(shuffled, target).score == pytest.approx(1.0)


def test_a_shift_of_0_3_costs_a_little_and_more_distance_costs_more(target: Scene) -> None:
    def shifted(dx: float) -> float:
        moved = target.with_objects((target.objects[0].moved(dx=dx), *target.objects[1:]))
        return scene_graph_score(moved, target).score

    n = len(target)
    near = shifted(0.3)
    assert near == pytest.approx(1 - 0.5 * (1 - math.exp(-0.09)) / n, abs=1e-9)
    assert 1.0 > near > shifted(0.6) > shifted(1.5) > 0.5


def test_missing_extra_and_wrong_attributes_move_the_right_stats(target: Scene) -> None:
    missing = scene_graph_score(target.with_objects(target.objects[1:]), target)
    assert missing.recall == pytest.approx((len(target) - 1) / len(target))
    assert missing.precision == 1.0 and missing.score < 1.0
    extra_obj = SceneObject("cube", "small", "metal", "red", x=-2.9, y=2.9)
    extra = scene_graph_score(target.with_objects((*target.objects, extra_obj)), target)
    assert extra.recall == 1.0 and extra.precision < 1.0 and extra.score < 1.0
    o = target.objects[0]
    other = "blue" if o.color != "blue" else "red"
    recolored = target.with_objects((SceneObject(o.shape, o.size, o.material, other, o.x, o.y,
                                                 o.rotation), *target.objects[1:]))  # fmt: skip
    wrong = scene_graph_score(recolored, target)
    assert wrong.f1 == 1.0
    assert wrong.attribute_accuracy == pytest.approx(1 - 0.25 / len(target))
    assert wrong.score < 1.0


def test_empty_cases() -> None:
    empty = Scene(())
    one = Scene((SceneObject("sphere", "large", "rubber", "gray", 0.0, 0.0),))
    assert scene_graph_score(empty, empty).score == 1.0
    none_found = scene_graph_score(empty, one)
    assert (none_found.score, none_found.recall, none_found.precision) == (0.0, 0.0, 0.0)
    assert math.isnan(none_found.mean_position_error)
    with pytest.raises(TypeError, match="Scene"):
        scene_graph_score([], one)  # type: ignore[arg-type]


def test_viewpoint_independent_rigid_motion_and_cube_symmetry(target: Scene) -> None:
    moved = target.with_objects((target.objects[0].moved(dx=0.4), *target.objects[1:]))
    base = scene_graph_score(moved, target)

    def turned(scene: Scene, angle: float) -> Scene:
        c, s = math.cos(angle), math.sin(angle)
        return scene.with_objects(
            SceneObject(o.shape, o.size, o.material, o.color, c * o.x - s * o.y,
                        s * o.x + c * o.y, o.rotation + angle)
            for o in scene.objects
        )  # fmt: skip

    spun = scene_graph_score(turned(moved, 1.1), turned(target, 1.1))
    assert spun.score == pytest.approx(base.score, abs=1e-12)
    cube = SceneObject("cube", "large", "rubber", "gray", 0.0, 0.0, rotation=0.2)
    quarter = SceneObject("cube", "large", "rubber", "gray", 0.0, 0.0, rotation=0.2 + math.pi / 2)
    eighth = SceneObject("cube", "large", "rubber", "gray", 0.0, 0.0, rotation=0.2 + math.pi / 4)
    assert scene_graph_score(Scene((quarter,)), Scene((cube,))).score == pytest.approx(1.0)
    assert scene_graph_score(Scene((eighth,)), Scene((cube,))).score == pytest.approx(0.9)
