"""The top-k growth sampler of the Dynamically Grown GAN, as an Optuna sampler.

One trial is one child. Before a trial starts, the sampler ranks the COMPLETE trials by the
study objective, picks a parent uniformly among the best ``k`` and samples one of the parent's
legal next actions that no earlier trial already took from that parent (sampled, not all of
them). With no complete trial yet, the trial is a root: the minimal networks.

The choice is stored on the trial as user attrs (``parent``: trial number or None, ``action``:
a readable label) and the action's parameters come back from :meth:`sample_independent` when
the space asks for them with ``suggest_categorical``, so they show up as ordinary Optuna params.
Every other parameter (learning rate …) is delegated to an inner sampler (TPE by default).
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from genas.spaces.base import GrowableSpace

PARENT_ATTR = "parent"
ACTION_ATTR = "action"
TOP_K_ATTR = "genas:top_k"  # the trials the parent was drawn from, best first
_PLAN_ATTR = "genas:planned_action"  # JSON of the action dict, read back by sample_independent


def rank_trials(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[FrozenTrial]:
    """Best first: by Pareto rank (non-dominated sorting), then by the first objective."""
    signs = np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in directions])
    values = np.array([np.asarray(t.values, dtype=float) * signs for t in trials]).reshape(len(trials), -1)
    ranks = np.zeros(len(trials), dtype=int)
    remaining = set(range(len(trials)))
    level = 0
    while remaining:
        front = {i for i in remaining
                 if not any(np.all(values[j] <= values[i]) and np.any(values[j] < values[i])
                            for j in remaining if j != i)}
        for i in front:
            ranks[i] = level
        remaining -= front
        level += 1
    order = sorted(range(len(trials)), key=lambda i: (ranks[i], values[i][0], trials[i].number))
    return [trials[i] for i in order]


class GrowthSampler(BaseSampler):
    """Top-k parent selection plus one sampled growth action per trial."""

    def __init__(self, space: GrowableSpace, resolution: int, budget: str, k: int,
                 inner: BaseSampler | None = None, seed: int | None = None) -> None:
        self.space, self.resolution, self.budget, self.k = space, resolution, budget, k
        self._rng = np.random.default_rng(seed)
        self._inner = inner or optuna.samplers.TPESampler(seed=seed)

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._inner.reseed_rng()

    def top_k(self, study: Study) -> list[FrozenTrial]:
        complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if "arch" in t.user_attrs]
        return rank_trials(complete, study.directions)[: self.k] if complete else []

    def choose(self, study: Study, candidates: list[FrozenTrial]) -> tuple[FrozenTrial | None, dict]:
        """(parent trial or None for a root, action) for the next trial, the parent among ``candidates``."""
        taken: dict[Any, set[str]] = {}
        for t in study.get_trials(deepcopy=False):
            if _PLAN_ATTR in t.user_attrs and t.state != TrialState.FAIL:
                taken.setdefault(t.user_attrs.get(PARENT_ATTR), set()).add(t.user_attrs[_PLAN_ATTR])
        for parent in self._rng.permutation(len(candidates)) if candidates else []:
            trial = candidates[int(parent)]
            actions = self.space.next_actions(trial.user_attrs["arch"], self.resolution, self.budget)
            fresh = [a for a in actions if _key(a) not in taken.get(trial.number, set())]
            if fresh:
                return trial, fresh[int(self._rng.integers(len(fresh)))]
        roots = self.space.root_actions(self.resolution, self.budget)
        fresh = [a for a in roots if _key(a) not in taken.get(None, set())] or roots
        return None, fresh[int(self._rng.integers(len(fresh)))]

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if _PLAN_ATTR in trial.user_attrs:  # a retried or enqueued trial keeps its plan
            return
        candidates = self.top_k(study)
        parent_trial, action = self.choose(study, candidates)
        parent = None if parent_trial is None else parent_trial.number
        parent_arch = None if parent_trial is None else parent_trial.user_attrs["arch"]
        label = self.space.action_label(action, parent_arch)
        attrs = {PARENT_ATTR: parent, ACTION_ATTR: label, _PLAN_ATTR: _key(action),
                 TOP_K_ATTR: [t.number for t in candidates]}
        for key, value in attrs.items():
            # The public Trial API does not exist yet: write to the storage, and to the frozen
            # trial that the coming Trial object caches (its user_attrs are read from there).
            study._storage.set_trial_user_attr(trial._trial_id, key, value)
            trial.user_attrs[key] = value

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # The frozen trial handed in may predate before_trial's writes: read the storage.
        plan = study._storage.get_trial_user_attrs(trial._trial_id).get(_PLAN_ATTR)
        if plan is not None:
            action = json.loads(plan)
            if param_name in action:
                return action[param_name]
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._inner.after_trial(study, trial, state, values)


def _key(action: dict) -> str:
    return json.dumps(action, sort_keys=True)
