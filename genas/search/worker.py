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
from genas.search.faults import fail_dead_local_trials, retry_interrupted, stop_on_sigterm
from genas.search.objective import FAIL_REASON_ATTR, Objective, Progress, resolve_device
from genas.search.study import StudySpec, attach_search, check_budget_unchanged
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
               total_trials: int | None = None, storage_url: str | None = None,
               stop_at_plan: bool = False) -> optuna.Study:
    """Run trials of ``study`` in this process until one of the limits is reached.

    ``n_trials``: trials this worker runs; ``timeout``: seconds after which it starts no new
    trial; ``total_trials``: stop once the study has that many COMPLETE trials (all workers);
    ``storage_url``: the study's storage (None: the default), for the samplers' study-wide lock;
    ``stop_at_plan``: a beam search (dggan) stops when its planned generations are done.
    """
    check_budget_unchanged(study, spec)
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
    if (storage_url or "").startswith("journal:"):  # no heartbeats there: find killed local workers ourselves
        fail_dead_local_trials(study)
        callbacks.append(lambda s, t: fail_dead_local_trials(s))
    if total_trials is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(total_trials, states=(TrialState.COMPLETE,)))
    beam = getattr(study.sampler, "beam", None) if stop_at_plan else None
    if beam is not None:
        callbacks.append(lambda s, t: s.stop() if beam.finished(s.get_trials(deepcopy=False)) else None)
    started = time.monotonic()
    outage_since, done_at_outage = None, -1
    in_flight: tuple[optuna.Trial, list[float] | None, str] | None = None
    with stop_on_sigterm():
        while True:
            left = None if n_trials is None else n_trials - done[0]
            time_left = None if timeout is None else timeout - (time.monotonic() - started)
            try:
                if in_flight is not None:  # the trial the outage caught: end it before anything else
                    settle(study, *in_flight)
                    in_flight = None
                if (left is not None and left <= 0) or (time_left is not None and time_left <= 0) or \
                        (total_trials is not None and _complete(study) >= total_trials) or \
                        (beam is not None and beam.finished(study.get_trials(deepcopy=False))):
                    break
                study.optimize(objective, n_trials=left, timeout=time_left, catch=(Exception,),
                               callbacks=callbacks, gc_after_trial=True)
                break
            except KeyboardInterrupt:
                if objective.current_trial is not None:
                    retry_interrupted(study, objective.current_trial)
                raise
            except Exception as exc:  # noqa: BLE001 - filtered just below
                if _ended_elsewhere(exc):
                    # another worker took this trial for dead (its heartbeats came late: an overloaded
                    # machine) and failed it, so its slot runs again; this worker goes on
                    log.warning("the trial this worker ran was ended by another worker meanwhile (%s); "
                                "its result is dropped", first_line(exc, 200))
                    objective.last_trial = None
                    continue
                if not _storage_trouble(exc):
                    raise
                if outage_since is None or done[0] > done_at_outage:  # a new outage, not the same one
                    outage_since, done_at_outage = time.monotonic(), done[0]
                if in_flight is None and objective.last_trial is not None:
                    in_flight = (objective.last_trial, objective.last_values, first_line(exc, 300))
                    objective.last_trial = None
                if time.monotonic() - outage_since > RECONNECT_FOR_S:
                    raise GenasError(f"the study storage has been unreachable for {RECONNECT_FOR_S:.0f} s "
                                     f"({first_line(exc, 200)}); check the database and start the worker again") from exc
                log.warning("storage trouble (%s); the trial in flight will be retried; reconnecting",
                            first_line(exc, 200))
                time.sleep(2.0)
                continue
    return study


def _ended_elsewhere(exc: BaseException) -> bool:
    """Optuna's refusal to tell a trial that is already finished (FAIL, by another worker)."""
    return isinstance(exc, optuna.exceptions.UpdateFinishedTrialError) or \
        (isinstance(exc, ValueError) and str(exc).startswith("Cannot tell a ") and str(exc).endswith(" trial."))


def settle(study: optuna.Study, trial: optuna.Trial, values: list[float] | None, error: str) -> None:
    """End a trial that a storage outage left RUNNING: told COMPLETE when it had finished its work,
    else failed with the reason (its MLflow run closed) and run again by the next worker."""
    from genas.search.faults import close_trial_run, retry_interrupted

    frozen = next((t for t in study.get_trials(deepcopy=False) if t.number == trial.number), None)
    if frozen is None or frozen.state != TrialState.RUNNING:
        return  # finished after all, or already failed as stale by another worker
    if values is not None:
        study.tell(trial, values)
        log.warning("trial %d finished during a storage outage; its result is recorded now", trial.number)
        return
    reason = f"the study storage failed while the trial ran ({error}); it is run again"
    trial.set_user_attr(FAIL_REASON_ATTR, reason)
    study.tell(trial, state=TrialState.FAIL)
    close_trial_run(frozen, reason, "FAILED")
    retry_interrupted(study, trial.number)
    log.warning("trial %d: %s", trial.number, reason)


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
