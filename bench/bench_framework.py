"""genas's own cost: no-op trials per minute by storage and worker count, and a real trial's share.

    python bench/bench_framework.py [--workers 1,4,8] [--trials-per-worker 8]
                                    [--storages sqlite,journal,postgresql] [--dggan-trials 3]

(a) Workers are fresh processes (spawned, as `genas worker` processes are) running the normal worker
loop on a ``noop`` space registered here: one float suggested, no training, a constant
generator, SWD of 16 samples, and everything genas does around a trial (MLflow run, params,
tags, sample grid, pyfunc model, state). MLflow logs to one PostgreSQL database for every case,
so the cases differ only in the Optuna storage. Trials/minute counts the whole study: first
trial start to last trial end.

(b) A few ``small`` dggan trials on SQLite; each logs ``seconds_training``,
``seconds_evaluation`` and ``seconds_framework`` (everything else: MLflow, checkpoints in and out,
the model, sampler, storage), and the table shows genas's share of the wall time.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
import uuid
import warnings

import torch

from genas.data import to_uint8
from genas.spaces.base import Space, TrialContext, register_space

NOOP_BUDGET = {"images_per_trial": 1, "eval_samples": 16, "quick_eval_samples": 16, "reports": 0, "trials": 1}


class ConstantGenerator:
    space_name = "noop"

    def __init__(self, value: float, shape: tuple[int, int, int]) -> None:
        self.value, self.shape = value, shape

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        return to_uint8(torch.full((n, *self.shape), self.value))

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        return {"space": "noop", "shape": list(self.shape)}, {"value": torch.tensor([self.value])}

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> "ConstantGenerator":
        return cls(float(tensors["value"][0]), tuple(config["shape"]))


@register_space
class NoopSpace(Space):
    name = "noop"
    generator_cls = ConstantGenerator
    default_pruner = "none"
    budgets = {"tiny": NOOP_BUDGET, "small": NOOP_BUDGET, "full": NOOP_BUDGET}

    def suggest(self, trial, ctx: TrialContext) -> dict:  # noqa: ANN001
        return {"value": trial.suggest_float("value", -1.0, 1.0)}

    def train(self, config: dict, ctx: TrialContext) -> ConstantGenerator:
        ctx.save_state({"space": "noop"}, {"value": torch.tensor([config["value"]])})
        return ConstantGenerator(config["value"], tuple(ctx.dataset.images.shape[1:]))


def _worker(study_name: str, storage_url: str, trials: int) -> None:
    import optuna

    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from genas.search.study import load_study, open_storage
    from genas.search.worker import run_worker

    study, spec = load_study(study_name, open_storage(storage_url))
    run_worker(study, spec, n_trials=trials, timeout=None, device="cpu")


def noop_case(storage_kind: str, workers: int, per_worker: int, pg_admin) -> float:  # noqa: ANN001
    """Trials per minute of one study run by ``workers`` processes."""
    import optuna

    from genas.search.study import StudySpec, create_or_resume, open_storage

    with tempfile.TemporaryDirectory() as tmp:
        if storage_kind == "sqlite":
            url = f"sqlite:///{tmp}/optuna.db"
        elif storage_kind == "journal":
            url = f"journal:{tmp}/journal.log"
        else:
            url = pg_admin.create(f"genas_bench_{uuid.uuid4().hex[:8]}")
        name = f"noop-{storage_kind}-{workers}-{uuid.uuid4().hex[:6]}"
        spec = StudySpec("noop", "mnist5k", "tiny", ("swd",), "random", "none", 0)
        study = create_or_resume(name, spec, open_storage(url))
        procs = [mp.Process(target=_worker, args=(name, url, per_worker)) for _ in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        trials = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
        span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
        if storage_kind == "postgresql":
            pg_admin.drop(url)
        return len(trials) / span * 60


class PgAdmin:
    """CREATE / DROP DATABASE on the local server."""

    def __init__(self, dsn: str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres") -> None:
        self.dsn = dsn

    def _run(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()

    def create(self, name: str) -> str:
        self._run(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:5432/{name}"

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._run(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        self._run(f'DROP DATABASE IF EXISTS "{name}"')


def dggan_share(trials: int) -> list[dict]:
    import mlflow

    from genas.search.study import StudySpec, create_or_resume, open_storage
    from genas.search.worker import run_worker

    with tempfile.TemporaryDirectory() as tmp:
        spec = StudySpec("dggan", "mnist5k", "small", ("swd",), "growth", "none", 0)
        mlflow_uri = os.environ["MLFLOW_TRACKING_URI"]
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        try:
            study = run_worker(create_or_resume("share", spec, open_storage(f"sqlite:///{tmp}/optuna.db")), spec,
                               n_trials=trials, timeout=None, device="auto")
            client = mlflow.tracking.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
            rows = []
            for t in study.trials:
                m = client.get_run(t.user_attrs["mlflow_run_id"]).data.metrics
                rows.append({"trial": t.number, "action": t.user_attrs.get("action", ""), **{
                    k: m[k] for k in ("trial_seconds", "seconds_training", "seconds_evaluation",
                                      "seconds_framework", "framework_share")}})
            return rows
        finally:
            os.environ["MLFLOW_TRACKING_URI"] = mlflow_uri


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workers", default="1,4,8")
    p.add_argument("--trials-per-worker", type=int, default=8)
    p.add_argument("--storages", default="sqlite,journal,postgresql")
    p.add_argument("--dggan-trials", type=int, default=3)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # spawn, not fork: a forked worker would share this process's database connections
    mp.set_start_method("spawn")
    pg = PgAdmin()
    home = tempfile.TemporaryDirectory()
    os.environ["GENAS_HOME"] = home.name
    mlflow_db = pg.create(f"genas_bench_mlflow_{uuid.uuid4().hex[:8]}")
    os.environ["MLFLOW_TRACKING_URI"] = mlflow_db
    from genas.registry.tracking import client

    client().search_experiments(max_results=1)  # migrate the MLflow database once, before the workers
    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"machine: {cpu}; torch {torch.__version__}; MLflow on PostgreSQL 127.0.0.1; "
          f"{args.trials_per_worker} no-op trials per worker")
    print("| storage | workers | trials/min |")
    print("|---|---|---|")
    try:
        for kind in args.storages.split(","):
            for n in (int(w) for w in args.workers.split(",")):
                start = time.perf_counter()
                rate = noop_case(kind, n, args.trials_per_worker, pg)
                print(f"| {kind} | {n} | {rate:.0f} |  ({time.perf_counter() - start:.0f} s)", flush=True)
    finally:
        pg.drop(mlflow_db)
    if args.dggan_trials:
        rows = dggan_share(args.dggan_trials)
        print("\n| dggan small trial | action | seconds | training | evaluation | genas | genas share |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['trial']} | {r['action']} | {r['trial_seconds']:.1f} | {r['seconds_training']:.1f} | "
                  f"{r['seconds_evaluation']:.1f} | {r['seconds_framework']:.2f} | {100 * r['framework_share']:.1f}% |")
        print(f"mean genas share: {100 * statistics.mean(r['framework_share'] for r in rows):.1f}%")


if __name__ == "__main__":
    main()
