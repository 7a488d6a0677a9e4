"""Best-first order of finished trials: by Pareto front, then by the first objective.

One objective needs only a sort. For two, fronts come from one sweep over the trials sorted by
the first objective (O(n log n)); for more, each front is peeled off with a vectorised
dominance test (O(fronts x n^2 / chunk)), which is only ever met in small studies.
"""
from __future__ import annotations

import bisect
from typing import Sequence

import numpy as np
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

_CHUNK = 2048


def minimised(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> np.ndarray:
    """[n, m] objective values with maximised objectives negated."""
    signs = np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in directions])
    if not trials:
        return np.zeros((0, len(signs)))
    return np.array([np.asarray(t.values, dtype=float) for t in trials]).reshape(len(trials), -1) * signs


def pareto_fronts(values: np.ndarray) -> np.ndarray:
    """The front index of every row (0: non-dominated), all objectives minimised."""
    n, m = values.shape
    if n == 0 or m == 1:
        return np.zeros(n, dtype=int)
    if m == 2:
        return _fronts_2d(values)
    return _fronts_peeling(values)


def _fronts_2d(values: np.ndarray) -> np.ndarray:
    # Sorted by (v0, v1), a point is dominated by an earlier one q iff q.v1 < p.v1, or q.v1 == p.v1
    # with q.v0 < p.v0. Each front keeps its smallest v1 (and the smallest v0 reaching it); those
    # smallest v1 rise from front to front, so the first front not dominating p is found by bisection.
    order = np.lexsort((values[:, 1], values[:, 0]))
    fronts = np.zeros(len(values), dtype=int)
    best_v1: list[float] = []
    best_v0: list[float] = []
    for i in order:
        v0, v1 = values[i]
        f = bisect.bisect_left(best_v1, v1)  # fronts before f have best_v1 < v1: they dominate p
        while f < len(best_v1) and best_v1[f] == v1 and best_v0[f] < v0:
            f += 1
        if f == len(best_v1):
            best_v1.append(v1)
            best_v0.append(v0)
        elif v1 < best_v1[f]:
            best_v1[f], best_v0[f] = v1, v0
        fronts[i] = f
    return fronts


def _fronts_peeling(values: np.ndarray) -> np.ndarray:
    fronts = np.full(len(values), -1, dtype=int)
    remaining = np.arange(len(values))
    level = 0
    while remaining.size:
        rest = values[remaining]
        dominated = np.zeros(remaining.size, dtype=bool)
        for start in range(0, remaining.size, _CHUNK):
            block = rest[start:start + _CHUNK]  # is anything in ``rest`` dominating each row of the block?
            le = (rest[None, :, :] <= block[:, None, :]).all(axis=2)
            lt = (rest[None, :, :] < block[:, None, :]).any(axis=2)
            dominated[start:start + _CHUNK] = (le & lt).any(axis=1)
        fronts[remaining[~dominated]] = level
        remaining = remaining[dominated]
        level += 1
    return fronts


def rank_trials(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[FrozenTrial]:
    """Best first: by Pareto front, then by the first objective, then by trial number."""
    values = minimised(trials, directions)
    if not len(trials):
        return []
    fronts = pareto_fronts(values)
    numbers = np.array([t.number for t in trials])
    order = np.lexsort((numbers, values[:, 0], fronts))
    return [trials[i] for i in order]
