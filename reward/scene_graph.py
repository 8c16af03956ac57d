"""Scene-graph reward: match the agent's read-back Scene to the target Scene.

Works in world coordinates only, so it does not depend on the camera (viewpoint-
independent), and it is dense: every matched pair contributes a similarity in [0, 1]

    sim = 0.5 · exp(-(d / 1 m)²) + 0.4 · (attributes equal / 4) + 0.1 · rotation term

where d is the 3-D distance between the centres, the attributes are shape, size, material
and colour, and the rotation term is (1 + cos 4Δθ) / 2 for two cubes (a cube looks the same
every 90°) and 1 otherwise (a sphere or cylinder looks the same at any angle about z).
An exact Hungarian matching maximises the summed similarity; the combined score is

    score = Σ sim(matched pairs) / max(n_pred, n_target)        (1 when both are empty)

so a missing or an extra object costs 1/n, and moving one object 0.3 m costs
0.5 · (1 - e^-0.09) / n ≈ 0.043 / n. Precision, recall and F1 count matched pairs closer
than ``MATCH_DISTANCE`` as true positives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..scenes.model import Scene, SceneObject
from .assignment import linear_sum_assignment

POSITION_SCALE = 1.0  # metres; similarity exp(-(d / scale)²)
MATCH_DISTANCE = 0.5  # metres; a matched pair counts as found within this distance
W_POSITION, W_ATTRIBUTES, W_ROTATION = 0.5, 0.4, 0.1


@dataclass(frozen=True)
class SceneGraphScore:
    """Matching statistics; ``score`` in [0, 1] is what rewards use.

    ``precision`` / ``recall`` are 0 when there is nothing to divide by and the other side is
    not empty (1 when both are empty); ``attribute_accuracy`` is the mean fraction of equal
    attributes over true positives (0 without any); ``mean_position_error`` is the mean
    distance in metres over all matched pairs (NaN when nothing was matched).
    """

    precision: float
    recall: float
    f1: float
    attribute_accuracy: float
    mean_position_error: float
    score: float
    matches: tuple[tuple[int, int, float], ...]  # (pred index, target index, distance)


def _rotation_term(a: SceneObject, b: SceneObject) -> float:
    if a.shape == "cube" and b.shape == "cube":
        return 0.5 * (1.0 + math.cos(4.0 * (a.rotation - b.rotation)))
    return 1.0


def _attribute_agreement(a: SceneObject, b: SceneObject) -> float:
    return sum(x == y for x, y in zip(a.attributes(), b.attributes(), strict=True)) / 4.0


def similarity_matrix(pred: Scene, target: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(similarity, distance) matrices shaped (len(pred), len(target))."""
    p = np.array([o.position for o in pred.objects], dtype=np.float64).reshape(-1, 3)
    t = np.array([o.position for o in target.objects], dtype=np.float64).reshape(-1, 3)
    dist = np.linalg.norm(p[:, None, :] - t[None, :, :], axis=-1)
    attrs = np.array(
        [[_attribute_agreement(a, b) for b in target.objects] for a in pred.objects]
    ).reshape(dist.shape)
    rot = np.array([[_rotation_term(a, b) for b in target.objects] for a in pred.objects]).reshape(
        dist.shape
    )
    pos = np.exp(-((dist / POSITION_SCALE) ** 2))
    return W_POSITION * pos + W_ATTRIBUTES * attrs + W_ROTATION * rot, dist


def scene_graph_score(pred: Scene, target: Scene) -> SceneGraphScore:
    """Match ``pred`` (the agent's read-back) against ``target``; see the module docstring."""
    for name, scene in (("pred", pred), ("target", target)):
        if not isinstance(scene, Scene):
            raise TypeError(f"{name} must be a scenes.Scene, got {type(scene).__name__}")
    n_pred, n_target = len(pred), len(target)
    if n_pred == 0 and n_target == 0:
        return SceneGraphScore(1.0, 1.0, 1.0, 1.0, math.nan, 1.0, ())
    sim, dist = similarity_matrix(pred, target)
    rows, cols = linear_sum_assignment(-sim)
    matches = tuple((int(i), int(j), float(dist[i, j])) for i, j in zip(rows, cols, strict=True))
    tp = [(i, j) for i, j, d in matches if d <= MATCH_DISTANCE]
    precision = len(tp) / n_pred if n_pred else 0.0
    recall = len(tp) / n_target if n_target else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    attr = (
        float(np.mean([_attribute_agreement(pred.objects[i], target.objects[j]) for i, j in tp]))
        if tp
        else 0.0
    )
    err = float(np.mean([d for _, _, d in matches])) if matches else math.nan
    score = float(sim[rows, cols].sum()) / max(n_pred, n_target)
    return SceneGraphScore(precision, recall, f1, attr, err, min(1.0, score), matches)
