"""The worker loop: open a study from its storage and run trials until told to stop.

``genas search`` and ``genas worker`` both end up here. Trials run inside
``study.optimize`` because Optuna's heartbeats (stale trials failed and retried) only act
there; every exception is caught per trial so one bad candidate never ends the study. Around
``optimize`` the loop adds what a long-running worker needs (see ``faults.py``): SIGTERM stops it
cleanly, an interrupted trial is queued again, and a storage outage is waited out.
"""
from __future__ import annotations

import logging
import time

import optuna
from optuna.trial import TrialState

from genas.data import load_dataset
from genas.errors import GenasError, first_line
from genas.registry.tracking import ensure_experiment, start_run
from genas.search.faults import retry_interrupted, stop_on_sigterm
from genas.search.objective import Objective, Progress, resolve_device
from genas.search.study import StudySpec, attach_search
from genas.spaces.base import get_space

log = logging.getLogger(__name__)

PARENT_RUN_ATTR = "mlflow_parent_run_id"
RECONNECT_FOR_S = 300.0  # how long a worker waits out a storage outage before giving up


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
               device: str = "auto", progress: Progress | None = None,
               total_trials: int | None = None, storage_url: str | None = None) -> optuna.Study:
    """Run trials of ``study`` in this process until one of the limits is reached.

    ``n_trials``: trials this worker runs; ``timeout``: seconds after which it starts no new
    trial; ``total_trials``: stop once the study has that many COMPLETE trials (all workers);
    ``storage_url``: the study's storage (None: the default), for the samplers' study-wide lock.
    """
    space = get_space(spec.space)
    dataset = load_dataset(spec.dataset)
    space.check(dataset, space.resolve_options(spec.options), budget=spec.budget, objectives=spec.objectives)
    study = attach_search(study, spec, space, dataset.resolution, storage_url)
    experiment_id, parent_run = study_parent_run(study, spec)
    progress = progress or Progress()
    objective = Objective(study.study_name, spec, space, dataset, resolve_device(device),
                          experiment_id, parent_run, progress)
    done = [0]

    def finished(s: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        done[0] += 1
        progress.trial_finished(t)

    callbacks = [finished]
    if total_trials is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(total_trials, states=(TrialState.COMPLETE,)))
    started = time.monotonic()
    outage_since, done_at_outage = None, -1
    with stop_on_sigterm():
        while True:
            left = None if n_trials is None else n_trials - done[0]
            time_left = None if timeout is None else timeout - (time.monotonic() - started)
            try:
                if (left is not None and left <= 0) or (time_left is not None and time_left <= 0) or \
                        (total_trials is not None and _complete(study) >= total_trials):
                    break
                study.optimize(objective, n_trials=left, timeout=time_left, catch=(Exception,),
                               callbacks=callbacks, gc_after_trial=True)
                break
            except KeyboardInterrupt:
                if objective.current_trial is not None:
                    retry_interrupted(study, objective.current_trial)
                raise
            except Exception as exc:  # noqa: BLE001 - filtered just below
                if not _storage_trouble(exc):
                    raise
                if outage_since is None or done[0] > done_at_outage:  # a new outage, not the same one
                    outage_since, done_at_outage = time.monotonic(), done[0]
                if time.monotonic() - outage_since > RECONNECT_FOR_S:
                    raise GenasError(f"the study storage has been unreachable for {RECONNECT_FOR_S:.0f} s "
                                     f"({first_line(exc, 200)}); check the database and start the worker again") from exc
                log.warning("storage trouble (%s); the trial in flight will be retried; reconnecting",
                            first_line(exc, 200))
                time.sleep(2.0)
                continue
    return study


def _complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _storage_trouble(exc: BaseException) -> bool:
    """A lost database connection, or a trial the other workers already failed as stale.

    The whole exception chain counts: when the database drops while Optuna records a trial's
    end, Optuna's own clean-up can fail in turn (seen: an UnboundLocalError in ``_run_trial``
    raised while handling the StorageInternalError).
    """
    from sqlalchemy.exc import DBAPIError, OperationalError

    kinds = (OperationalError, DBAPIError, optuna.exceptions.StorageInternalError,
             optuna.exceptions.UpdateFinishedTrialError)
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kinds):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
