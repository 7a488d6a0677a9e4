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
import threading
import time

import mlflow
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from pg import database

from genas.search.beam import PLAN_ATTR, SLOT_ATTR, TOP_K_ATTR
from genas.search.ranking import rank_trials
from genas.search.study import StudySpec, attach_search, create_or_resume, open_storage
from genas.spaces import get_space

pytestmark = pytest.mark.slow

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


def assert_accounted_for(study: optuna.Study, genas_home) -> None:  # noqa: ANN001
    """Every trial has its own run, none left RUNNING, and the beam held: each generation expands
    exactly the k best complete candidates of the one before, and no slot was taken twice."""
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials))), "trial numbers have gaps or duplicates"
    assert not [t.number for t in trials if t.state == TrialState.RUNNING], "a trial was left RUNNING"
    runs = trial_runs(genas_home)
    started = [t for t in trials if "mlflow_run_id" in t.user_attrs]
    for t in started:
        assert [r.info.run_id for r in runs[str(t.number)]] == [t.user_attrs["mlflow_run_id"]]
        assert runs[str(t.number)][0].info.status != "RUNNING", f"trial {t.number}'s run was left RUNNING"
    assert set(runs) == {str(t.number) for t in started}
    held = [t for t in trials if SLOT_ATTR in t.user_attrs and t.state != TrialState.FAIL]
    slots = [t.user_attrs[SLOT_ATTR] for t in held]
    assert len(slots) == len(set(slots)), f"a slot was taken twice: {sorted(slots)}"
    pairs = [(t.user_attrs["parent"], t.user_attrs[PLAN_ATTR]) for t in held]
    assert len(pairs) == len(set(pairs)), "a (parent, action) was trained twice"
    by_generation: dict[int, list] = {}
    for t in trials:
        if "generation" in t.user_attrs:
            by_generation.setdefault(t.user_attrs["generation"], []).append(t)
    for generation, members in by_generation.items():
        if generation == 0:
            assert all(t.user_attrs["parent"] is None for t in members)
            continue
        before = [t for t in by_generation[generation - 1] if t.state == TrialState.COMPLETE]
        k = len(members[0].user_attrs[TOP_K_ATTR])
        best = [t.number for t in rank_trials(before, study.directions)[:k]]
        for t in members:
            assert t.user_attrs[TOP_K_ATTR] == best, (t.number, t.user_attrs[TOP_K_ATTR], best)
            assert t.user_attrs["parent"] in best


def test_three_workers_on_postgresql(env, genas_home):
    with database() as url:
        new_study(url)
        procs = [worker(url, env, "--total-trials", "6") for _ in range(3)]
        finish(procs)
        study = optuna.load_study(study_name=STUDY, storage=url)
        complete = study.get_trials(states=(TrialState.COMPLETE,))
        assert len(complete) >= 6
        assert len({t.user_attrs["worker"] for t in study.trials if "worker" in t.user_attrs}) == 3
        assert_accounted_for(study, genas_home)


# ask() outside optimize() on a storage with heartbeats, on purpose: the claim is what is tested
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize:UserWarning")
def test_workers_released_together_never_take_the_same_slot(genas_home):
    """Eight claims on PostgreSQL, each through its own storage connection, released by one barrier."""
    with database() as url:
        spec = StudySpec("dggan", "mnist5k", "tiny", ("swd",), "growth", "none", 0, None,
                         {"roots": "8", "widths": "8,16,32,64", "kernels": "3,5"})  # 8 different roots
        create_or_resume(STUDY, spec, open_storage(url))
        barrier, claimed, errors = threading.Barrier(8), [], []

        def claim() -> None:
            try:
                study = attach_search(optuna.load_study(study_name=STUDY, storage=open_storage(url)), spec,
                                      get_space("dggan"), 32, url)
                trial = study.ask()
                barrier.wait(timeout=60)
                study.sampler.claim(trial)
                claimed.append((trial.user_attrs[SLOT_ATTR], trial.user_attrs[PLAN_ATTR]))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert sorted(slot for slot, _ in claimed) == [f"0/{i}" for i in range(8)]
        assert len({plan for _, plan in claimed}) == 8


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
    assert_accounted_for(study, genas_home)


def wait_until(predicate, timeout: float = 180, every: float = 0.3):  # noqa: ANN001
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def killed_and_retried(study: optuna.Study, victim: optuna.trial.FrozenTrial, genas_home, reason: str) -> None:  # noqa: ANN001
    """The victim failed, its slot was run again to COMPLETE with the same parent and plan, and both
    MLflow runs say so."""
    trials = {t.number: t for t in study.get_trials()}
    dead = trials[victim.number]
    assert dead.state == TrialState.FAIL
    retries = [t for t in trials.values() if t.number > victim.number
               and t.user_attrs.get(SLOT_ATTR) == dead.user_attrs[SLOT_ATTR]]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].user_attrs["parent"] == dead.user_attrs["parent"]
    assert retries[0].user_attrs[PLAN_ATTR] == dead.user_attrs[PLAN_ATTR]
    runs = trial_runs(genas_home)
    dead_run = runs[str(victim.number)][0]
    assert dead_run.info.status == "KILLED" and reason in dead_run.data.tags["genas.fail_reason"]
    retry_run = runs[str(retries[0].number)][0]
    assert retry_run.info.status == "FINISHED"
    assert retry_run.data.tags["genas.parent"] == ("root" if dead.user_attrs["parent"] is None
                                                   else str(dead.user_attrs["parent"]))
    assert_accounted_for(study, genas_home)


def running_with_run(study: optuna.Study) -> list:
    return [t for t in study.get_trials(states=(TrialState.RUNNING,)) if "mlflow_run_id" in t.user_attrs]


def test_sigkilled_worker_trial_fails_and_is_retried(env, genas_home):
    with database() as url:
        study = new_study(url)
        doomed = worker(url, env, "--trials", "1")
        victim = wait_until(lambda: running_with_run(study))[0]
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        time.sleep(7)  # past the grace period: the next worker to start a trial fails it
        finish([worker(url, env, "--total-trials", "3")])
        killed_and_retried(study, victim, genas_home, "heartbeats")


def test_killed_worker_on_a_journal_file_is_found_and_retried(env, genas_home):
    storage = f"journal:{genas_home.parent / 'journal.log'}"
    study = new_study(storage)
    doomed = worker(storage, env, "--trials", "1")
    victim = wait_until(lambda: running_with_run(study))[0]
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    finish([worker(storage, env, "--total-trials", "3")])  # no heartbeats: the dead pid gives it away
    killed_and_retried(optuna.load_study(study_name=STUDY, storage=open_storage(storage)), victim, genas_home,
                       "worker process")


def test_sigterm_fails_the_trial_cleanly_and_the_next_worker_runs_it(env, genas_home):
    storage = f"sqlite:///{genas_home / 'optuna.db'}"
    study = new_study(storage)
    proc = worker(storage, env, "--trials", "5")
    victim = wait_until(lambda: running_with_run(study))[0]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:]
    assert "worker stopped" in out
    trials = {t.number: t for t in study.get_trials()}
    assert trials[victim.number].state == TrialState.FAIL
    assert "interrupted" in trials[victim.number].user_attrs["fail_reason"]
    finish([worker(storage, env, "--trials", "1")])
    killed_and_retried(study, victim, genas_home, "interrupted")


def can_restart_postgresql() -> str | None:
    """Why PostgreSQL cannot be restarted here, or None when it can."""
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        return "restarting PostgreSQL needs pg_ctlcluster"
    if os.geteuid() != 0:
        return "restarting PostgreSQL needs root"
    return None


def restart_postgresql() -> None:
    version = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.split()[0]
    subprocess.run(["pg_ctlcluster", version, "main", "restart"], check=True, timeout=120)


def test_study_survives_a_postgresql_restart(env, genas_home):
    why_not = can_restart_postgresql()
    if why_not:  # checked before any worker starts, so a skip leaves nothing running
        if os.environ.get("GENAS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{why_not}; GENAS_REQUIRE_POSTGRES=1 asks for this test")
        pytest.skip(why_not)
    with database() as url:
        study = new_study(url)
        proc = worker(url, env, "--total-trials", "4")
        try:
            wait_until(lambda: study.get_trials(states=(TrialState.COMPLETE,)), every=0.5)
            wait_until(lambda: study.get_trials(states=(TrialState.RUNNING,)), every=0.2)
            restart_postgresql()
            out = finish([proc])[0]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=60)
        study = optuna.load_study(study_name=STUDY, storage=url)
        assert len(study.get_trials(states=(TrialState.COMPLETE,))) >= 4, out[-2000:]
        assert_accounted_for(study, genas_home)  # the trial the restart caught ended too
