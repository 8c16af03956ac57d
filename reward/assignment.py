"""Exact minimum-cost assignment (Hungarian / Kuhn–Munkres), numpy only.

The O(n²·m) shortest-augmenting-path form with row/column potentials (as in Jonker &
Volgenant, and scipy's ``linear_sum_assignment``). Scenes have at most a dozen objects, so
this is microseconds, and it is exact, unlike greedy matching.
"""

from __future__ import annotations

import numpy as np


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost matching of a finite (n, m) matrix.

    Every row is matched when n <= m, every column otherwise; returns (rows, cols) sorted
    by row, like ``scipy.optimize.linear_sum_assignment``.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("cost must be finite everywhere")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    if n == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    u = np.zeros(n + 1)  # row potentials (1-based; index 0 is the virtual start)
    v = np.zeros(m + 1)  # column potentials
    match = np.zeros(m + 1, dtype=np.intp)  # match[j] = row matched to column j, 0 = none
    way = np.zeros(m + 1, dtype=np.intp)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:  # augment along the alternating path
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    cols = np.nonzero(match[1:])[0]
    rows = match[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order].astype(np.intp), cols[order].astype(np.intp)
