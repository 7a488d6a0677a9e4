"""What a study survives: dead workers, stop signals and a database that goes away for a while.

- A worker killed outright stops sending heartbeats. Optuna fails its trial once the grace
  period has passed (checked by any worker when it starts a trial) and :class:`RetryStaleTrial`
  queues a copy of it (same params, same parent and action) for the next free worker; genas also
  ends the dead trial's MLflow run as KILLED with the reason, so no run stays RUNNING.
- SIGTERM is turned into :class:`WorkerStopped` (a KeyboardInterrupt, like SIGINT), so Optuna
  fails the current trial, the objective closes its MLflow run with the reason, and the worker
  queues the trial again before it exits.
- :class:`ResilientRDBStorage` keeps the heartbeat thread alive through a database outage; the
  worker loop reconnects (SQLAlchemy's pool pre-ping) and carries on.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
from contextlib import contextmanager
from typing import Iterator

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial

from genas.errors import first_line
from genas.search.beam import SLOT_ATTR

log = logging.getLogger(__name__)

STALE_REASON = "the worker running it stopped sending heartbeats (killed, or lost its machine); retried as a new trial"


def heartbeat_settings() -> tuple[int, int]:
    """(interval, grace period) in seconds; ``$GENAS_HEARTBEAT_INTERVAL`` / ``$GENAS_HEARTBEAT_GRACE``."""
    interval = int(os.environ.get("GENAS_HEARTBEAT_INTERVAL", "30"))
    grace = int(os.environ.get("GENAS_HEARTBEAT_GRACE", str(4 * interval)))
    if interval < 1 or grace <= interval:
        raise ValueError(f"heartbeat grace ({grace} s) must exceed the interval ({interval} s)")
    return interval, grace


def close_trial_run(trial: FrozenTrial, reason: str, status: str = "KILLED") -> None:
    """End the MLflow run of a trial that cannot end it itself; never raises."""
    from genas.registry.tracking import RUN_ID_ATTR, RunLogger

    run_id = trial.user_attrs.get(RUN_ID_ATTR)
    if run_id is None:
        return
    try:
        RunLogger(run_id).fail(reason, status)
    except Exception as exc:  # noqa: BLE001 - the tracking store may be the thing that is down
        log.warning("could not close the MLflow run %s of trial %d: %s", run_id, trial.number, exc)


class RetryStaleTrial(RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of heartbeat-stale trials, plus closing the dead trial's MLflow run.

    A trial that held a slot of a beam (dggan) is not copied: its failure frees the slot, and
    the next trial that claims one takes it (at most ``beam.MAX_ATTEMPTS`` tries a slot).
    """

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        log.warning("trial %d: %s", trial.number, STALE_REASON)
        close_trial_run(trial, STALE_REASON)
        if SLOT_ATTR not in trial.user_attrs:
            super().__call__(study, trial)


def retry_interrupted(study: optuna.Study, number: int) -> None:
    """Queue again a trial this worker failed because it was told to stop (at most once)."""
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is not None and trial.state == optuna.trial.TrialState.FAIL:
        if SLOT_ATTR not in trial.user_attrs:  # a beam's slot frees itself (see RetryStaleTrial)
            RetryHeartbeatStaleTrialCallback(max_retry=1)(study, trial)
        log.warning("trial %d was interrupted; it will be run again by the next worker", number)


DEAD_WORKER_REASON = "its worker process on this machine is gone (killed); run again"


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose worker was a process on this machine that no longer exists.

    For storages without heartbeats (the journal file): there nothing else would ever end a killed
    worker's trial, and a beam waiting for its generation would wait for good. A worker is
    recognised by its ``worker`` user attr (``host:pid``); trials of other machines are left alone.
    """
    from genas.search.objective import WORKER_ATTR

    host = socket.gethostname()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker_host, _, pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
        if worker_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker ended it first
        log.warning("trial %d: %s", trial.number, DEAD_WORKER_REASON)
        close_trial_run(trial, DEAD_WORKER_REASON)
        if SLOT_ATTR not in trial.user_attrs:
            RetryHeartbeatStaleTrialCallback(max_retry=1)(study, trial)
        failed.append(trial.number)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return pid != 0


class ResilientRDBStorage(RDBStorage):
    """An RDB storage whose heartbeat survives a database outage (it logs and tries again)."""

    def record_heartbeat(self, trial_id: int) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            super().record_heartbeat(trial_id)
        except SQLAlchemyError as exc:
            log.warning("heartbeat of trial id %d not recorded (%s); retrying", trial_id, first_line(exc, 200))


class WorkerStopped(KeyboardInterrupt):
    """SIGTERM, handled as SIGINT is: Optuna fails the running trial and the worker exits."""


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`WorkerStopped` (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise WorkerStopped(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
