"""Spatial relationships (left/right/front/behind) computed as CLEVR does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from . import universe

Vec3 = tuple[float, float, float]


def relationships(
    positions: Sequence[Vec3],
    directions: Mapping[str, Sequence[float]],
    eps: float = universe.RELATION_EPS,
) -> dict[str, list[list[int]]]:
    """``out[rel][i]`` lists the objects j that stand in direction ``rel`` of object i.

    CLEVR's ``compute_all_relationships``: j is related when the displacement from i to j
    projects onto the direction by more than ``eps``. Above/below are skipped as there.
    """
    out: dict[str, list[list[int]]] = {}
    for name, vec in directions.items():
        if name in ("above", "below"):
            continue
        out[name] = []
        for i, p in enumerate(positions):
            related = [
                j
                for j, q in enumerate(positions)
                if j != i and sum((q[k] - p[k]) * vec[k] for k in range(3)) > eps
            ]
            out[name].append(related)
    return out
