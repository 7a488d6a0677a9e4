"""What each switchable module is worth: a study whose space turns modules on and off is an ablation.

A *switch* is any parameter the trials drew from the categorical choices ``(False, True)``
(mspgsen's ``use_dema``, san's ``use_rpa`` …). For each one, the complete trials with the
module on are compared with those with it off on the first objective: count, mean and best of
each side, and the difference of the means signed so that a positive ``gain`` means the module
helped. With few trials per side the numbers are noisy; the counts are shown so people can judge.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from optuna.distributions import CategoricalDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


@dataclass(frozen=True)
class SwitchEffect:
    param: str
    on_count: int
    off_count: int
    on_mean: float | None
    off_mean: float | None
    on_best: float | None
    off_best: float | None
    gain: float | None  # off_mean - on_mean when minimising, on_mean - off_mean when maximising


def switches(trials: list[FrozenTrial]) -> list[str]:
    """The parameters drawn from exactly the choices False and True, in first-seen order."""
    names: dict[str, None] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            if isinstance(dist, CategoricalDistribution) and set(dist.choices) == {False, True} and len(dist.choices) == 2:
                names[name] = None
    return list(names)


def switch_effects(trials: list[FrozenTrial], direction: StudyDirection) -> list[SwitchEffect]:
    """One row per switch, over the complete trials' first objective value."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
    pick = max if direction == StudyDirection.MAXIMIZE else min
    rows = []
    for name in switches(complete):
        on = [t.values[0] for t in complete if t.params.get(name) is True]
        off = [t.values[0] for t in complete if t.params.get(name) is False]
        on_mean = statistics.fmean(on) if on else None
        off_mean = statistics.fmean(off) if off else None
        gain = sign * (on_mean - off_mean) if on and off else None
        rows.append(SwitchEffect(name, len(on), len(off), on_mean, off_mean, pick(on) if on else None,
                                 pick(off) if off else None, gain))
    return rows


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
