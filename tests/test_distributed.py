"""Many workers, one study: PostgreSQL and journal storages, a SIGKILLed worker, a database restart.

Workers are real `genas worker` processes. Heartbeats are shortened (1 s, grace 6 s) so that a
dead worker's trial is failed and retried within the test.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from pg import database

from genas.search.ranking import rank_trials
from genas.search.study import StudySpec, create_or_resume, open_storage

STUDY = "dist"
FAST_HEARTBEAT = {"GENAS_HEARTBEAT_INTERVAL": "1", "GENAS_HEARTBEAT_GRACE": "6"}


@pytest.fixture()
def env(genas_home, monkeypatch):
    genas_home.mkdir(parents=True, exist_ok=True)
    for key, value in FAST_HEARTBEAT.items():
        monkeypatch.setenv(key, value)
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
            "GENAS_HOME": str(genas_home), **FAST_HEARTBEAT}


def new_study(storage: str, top_k: int = 2) -> optuna.Study:
    spec = StudySpec("dggan", "mnist5k", "tiny", ("swd",), "growth", "none", 0, top_k)
    return create_or_resume(STUDY, spec, open_storage(storage))


def worker(storage: str, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "genas.cli", "worker", STUDY, "--storage", storage,
                             "--device", "cpu", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(procs: list[subprocess.Popen], timeout: float = 600) -> list[str]:
    outputs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        outputs.append(out)
        assert p.returncode == 0, out[-3000:]
    return outputs


def trial_runs(genas_home) -> dict[str, list]:  # noqa: ANN001
    mlflow.set_tracking_uri(f"sqlite:///{genas_home / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name(f"genas/{STUDY}")
    runs: dict[str, list] = {}
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        if "genas.trial" in r.data.tags:
            runs.setdefault(r.data.tags["genas.trial"], []).append(r)
    return runs


def assert_accounted_for(study: optuna.Study, genas_home, k: int) -> None:  # noqa: ANN001
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials))), "trial numbers have gaps or duplicates"
    runs = trial_runs(genas_home)
    started = [t for t in trials if "mlflow_run_id" in t.user_attrs and t.state != TrialState.WAITING]
    for t in started:
        assert [r.info.run_id for r in runs[str(t.number)]] == [t.user_attrs["mlflow_run_id"]]
        assert runs[str(t.number)][0].info.status != "RUNNING", f"trial {t.number}'s run was left RUNNING"
    assert set(runs) == {str(t.number) for t in started}
    # parents come from the k best complete trials the sampler saw: every trial that was complete
    # well before the child started (so certainly seen) and is not a candidate ranks below them all
    by_number = {t.number: t for t in trials}
    for t in trials:
        if t.user_attrs.get("parent") is None or t.datetime_start is None:
            continue
        candidates = t.user_attrs["genas:top_k"]
        assert t.user_attrs["parent"] in candidates and 0 < len(candidates) <= k
        assert all(by_number[c].state == TrialState.COMPLETE for c in candidates)
        # (1 s of margin: a finishing trial stamps its end just before its commit lands)
        # a retry keeps the choice its original trial made, so the original's start is the time
        chosen = by_number[t.system_attrs.get("failed_trial", t.number)].datetime_start
        seen = [p for p in trials if p.state == TrialState.COMPLETE
                and p.datetime_complete < chosen - timedelta(seconds=1)]
        ranked = rank_trials(seen + [by_number[c] for c in candidates if by_number[c] not in seen], study.directions)
        assert [p.number for p in ranked[:len(candidates)]] == candidates, (t.number, candidates)


def test_three_workers_on_postgresql(env, genas_home):
    with database() as url:
        new_study(url)
        procs = [worker(url, env, "--total-trials", "6") for _ in range(3)]
        finish(procs)
        study = optuna.load_study(study_name=STUDY, storage=url)
        complete = study.get_trials(states=(TrialState.COMPLETE,))
        assert len(complete) >= 6
        assert len({t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs}) == 3
        assert_accounted_for(study, genas_home, k=2)


def test_journal_storage_two_workers_from_one_command(env, genas_home):
    storage = f"journal:{genas_home.parent / 'journal.log'}"
    created = subprocess.run([sys.executable, "-m", "genas.cli", "search", "dggan", "--budget", "tiny", "--trials", "0",
                              "--top-k", "2", "--storage", storage, "--study-name", STUDY], env=env,
                             capture_output=True, text=True, timeout=300)
    assert created.returncode == 0 and f"genas worker {STUDY} --storage {storage}" in created.stdout, created
    out = subprocess.run([sys.executable, "-m", "genas.cli", "worker", STUDY, "--storage", storage,
                          "--devices", "cpu,cpu", "--total-trials", "4"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "starting 2 workers on cpu, cpu" in out.stdout
    study = optuna.load_study(study_name=STUDY, storage=open_storage(storage))
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) >= 4
    assert len({t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs}) == 2
    assert_accounted_for(study, genas_home, k=2)


def wait_until(predicate, timeout: float = 180, every: float = 0.3):  # noqa: ANN001
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def test_sigkilled_worker_trial_fails_and_is_retried(env, genas_home):
    with database() as url:
        study = new_study(url)
        doomed = worker(url, env, "--trials", "1")

        def running_with_run():
            return [t for t in study.get_trials(states=(TrialState.RUNNING,)) if "mlflow_run_id" in t.user_attrs]

        victim = wait_until(running_with_run)[0]
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        time.sleep(7)  # past the grace period: the next worker to start a trial fails it
        finish([worker(url, env, "--total-trials", "3")])
        trials = {t.number: t for t in study.get_trials()}
        assert trials[victim.number].state == TrialState.FAIL
        retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == victim.number]
        assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
        # the retry keeps what the dead trial had chosen (it may have died before choosing everything)
        dead_params = trials[victim.number].params
        assert {k: retries[0].params[k] for k in dead_params} == dead_params
        assert retries[0].user_attrs["parent"] == victim.user_attrs["parent"]
        assert len([t for t in trials.values() if t.state == TrialState.COMPLETE]) >= 3
        dead_run = next(r for r in trial_runs(genas_home)[str(victim.number)])
        assert dead_run.info.status == "KILLED" and "heartbeats" in dead_run.data.tags["genas.fail_reason"]
        assert_accounted_for(study, genas_home, k=2)


def test_sigterm_fails_the_trial_cleanly_and_queues_it_again(env, genas_home):
    storage = f"sqlite:///{genas_home / 'optuna.db'}"
    study = new_study(storage)
    proc = worker(storage, env, "--trials", "5")
    victim = wait_until(lambda: [t for t in study.get_trials(states=(TrialState.RUNNING,))
                                 if "mlflow_run_id" in t.user_attrs])[0]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:]
    assert "worker stopped" in out
    trials = {t.number: t for t in study.get_trials()}
    assert trials[victim.number].state == TrialState.FAIL
    assert "interrupted" in trials[victim.number].user_attrs["fail_reason"]
    queued = [t for t in trials.values() if t.system_attrs.get("failed_trial") == victim.number]
    assert len(queued) == 1 and queued[0].state == TrialState.WAITING
    run = trial_runs(genas_home)[str(victim.number)][0]
    assert run.info.status == "KILLED" and "interrupted" in run.data.tags["genas.fail_reason"]


def restart_postgresql() -> None:
    cmd = shutil.which("pg_ctlcluster")
    if cmd is None or os.geteuid() != 0:
        pytest.skip("restarting PostgreSQL needs pg_ctlcluster and root")
    version = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.split()[0]
    subprocess.run([cmd, version, "main", "restart"], check=True, timeout=120)


def test_study_survives_a_postgresql_restart(env, genas_home):
    with database() as url:
        study = new_study(url)
        proc = worker(url, env, "--total-trials", "4")
        wait_until(lambda: study.get_trials(states=(TrialState.COMPLETE,)), every=0.5)
        wait_until(lambda: study.get_trials(states=(TrialState.RUNNING,)), every=0.2)
        restart_postgresql()
        out = finish([proc])[0]
        study = optuna.load_study(study_name=STUDY, storage=url)
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) >= 4, out[-2000:]
        assert not study.get_trials(states=(TrialState.RUNNING,))
        assert_accounted_for(study, genas_home, k=2)
