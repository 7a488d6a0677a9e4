"""The worker loop: open a study from its storage and run trials until told to stop.

``genas search`` and ``genas worker`` both end up here. Trials run inside
``study.optimize`` because Optuna's heartbeats (stale trials failed and retried) only act
there; every exception is caught per trial so one bad candidate never ends the study.
"""
from __future__ import annotations

import logging

import optuna

from genas.data import load_dataset
from genas.registry.tracking import ensure_experiment, start_run
from genas.search.objective import Objective, Progress, resolve_device
from genas.search.study import StudySpec, attach_search
from genas.spaces.base import get_space

log = logging.getLogger(__name__)

PARENT_RUN_ATTR = "mlflow_parent_run_id"


def study_parent_run(study: optuna.Study, spec: StudySpec) -> tuple[str, str]:
    """(experiment id, parent run id), created on first use and remembered in the study."""
    experiment_id = ensure_experiment(study.study_name)
    parent = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent is None:
        parent = start_run(experiment_id, f"study {study.study_name}",
                           {"genas.study": study.study_name, "genas.space": spec.space,
                            "genas.role": "study", "genas.dataset": spec.dataset,
                            "genas.objectives": ",".join(spec.objectives)})
        study.set_user_attr(PARENT_RUN_ATTR, parent)
    return experiment_id, parent


def run_worker(study: optuna.Study, spec: StudySpec, *, n_trials: int | None, timeout: float | None,
               device: str = "auto", progress: Progress | None = None) -> optuna.Study:
    """Run up to ``n_trials`` trials (and/or until ``timeout`` seconds) of ``study`` in this process."""
    space = get_space(spec.space)
    dataset = load_dataset(spec.dataset)
    study = attach_search(study, spec, space, dataset.resolution)
    experiment_id, parent_run = study_parent_run(study, spec)
    progress = progress or Progress()
    objective = Objective(study.study_name, spec, space, dataset, resolve_device(device),
                          experiment_id, parent_run, progress)
    study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(Exception,),
                   callbacks=[lambda s, t: progress.trial_finished(t)], gc_after_trial=True)
    return study
