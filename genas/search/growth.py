"""The growth sampler: each trial of a growable space takes one planned candidate of the beam.

Before a trial trains, :meth:`GrowthSampler.claim` takes the first free slot of the current
generation (``beam.py``) under the study's lock (``locks.py``), so that workers starting
together never take the same (parent, action), and writes the slot to the trial's user attrs
(``parent``, ``action``, ``generation``, the plan). When every slot of the generation is taken
and some still train, it waits for them (its trial's heartbeat keeps going, and trials whose
worker died are failed and their slots freed). The planned params then come back from
:meth:`sample_independent` when the space asks for them, so they are ordinary Optuna params.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from genas.errors import GenasError
from genas.search.beam import ACTION_ATTR, PARENT_ATTR, PLAN_ATTR, TOP_K_ATTR, Beam
from genas.search.locks import StudyLock

__all__ = ["ACTION_ATTR", "PARENT_ATTR", "PLAN_ATTR", "TOP_K_ATTR", "GrowthSampler"]

log = logging.getLogger(__name__)

POLL_S = 2.0


class GrowthSampler(BaseSampler):
    """Planned params for every trial; the beam decides them, the lock hands them out."""

    def __init__(self, beam: Beam, lock: StudyLock, poll_s: float = POLL_S) -> None:
        self.beam, self.lock, self.poll_s = beam, lock, poll_s

    def claim(self, trial: optuna.Trial) -> None:
        """Give ``trial`` the next free slot (waiting while the generation is busy)."""
        if PLAN_ATTR in trial.user_attrs:  # already planned (a trial queued by hand with its plan)
            return
        study = trial.study
        waited = False
        while True:
            with self.lock.hold():
                trials = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
                slot = self.beam.next_slot(trials)
                if slot is not None:
                    for key, value in self.beam.attrs(slot, trials).items():
                        trial.set_user_attr(key, value)
                    return
            if not waited:
                log.info("trial %d waits for the running candidates of the current generation", trial.number)
                waited = True
            time.sleep(self.poll_s)
            _fail_stale(study)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        plan = trial.user_attrs.get(PLAN_ATTR)
        params = json.loads(plan) if plan is not None else {}
        if param_name not in params:
            raise GenasError(f"the growth sampler plans no {param_name!r} for trial {trial.number}; a growable "
                             "space's trial takes its params from its slot (genas claims one before it trains)")
        return params[param_name]

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        pass


def _fail_stale(study: optuna.Study) -> None:
    """Fail trials whose worker stopped sending heartbeats or died on this machine, so that their
    slots free up (the second also covers storages without heartbeats)."""
    import warnings

    from genas.search.faults import fail_dead_local_trials

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a no-op on storages without heartbeats
    fail_dead_local_trials(study)
