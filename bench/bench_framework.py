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

(c) ``--scale 100,1000,10000``: what the growth sampler costs per trial as a study grows. A dggan
study with N finished trials is written to each storage (a beam replayed offline: real plans,
real archs, random scores), then, in a fresh process as a new worker would be: reading the
trials (first read, then a cached re-read), planning the next slot from them (first plan: every
generation replayed; then the worker's cached plans), a whole ``claim`` (lock, read, plan, write)
and ranking all N trials for the leaderboard (one and two objectives).
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
    run_worker(study, spec, n_trials=trials, timeout=None, device="cpu", storage_url=storage_url)


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
            url = f"sqlite:///{tmp}/optuna.db"
            study = run_worker(create_or_resume("share", spec, open_storage(url)), spec,
                               n_trials=trials, timeout=None, device="auto", storage_url=url)
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


def synthetic_beam(n: int, seed: int = 0) -> list:
    """N finished trials of a dggan beam on mnist5k (small): the planner's own slots, real archs."""
    import json

    import numpy as np
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.study import StudyDirection
    from optuna.trial import TrialState, create_trial

    from genas.search.beam import Beam
    from genas.spaces import get_space
    from genas.spaces.dggan.actions import apply_action
    from genas.spaces.gan.grown import root_arch

    space = get_space("dggan")
    beam = Beam(space, space.resolve_options({}), "small", 32, seed, [StudyDirection.MINIMIZE])
    rng = np.random.default_rng(seed)
    dists = {k: CategoricalDistribution(v) for k, v in space.action_params.items()}
    dists["lr"] = FloatDistribution(1e-4, 1e-2, log=True)
    made: list = []
    while len(made) < n:
        slot = beam.next_slot(made)
        parent = next((t for t in made if t.number == slot.parent), None)
        arch = (root_arch(64, 1, slot.params["channels"], slot.params["kernel"]) if parent is None
                else apply_action(parent.user_attrs["arch"], slot.params)[0])
        attrs = {**beam.attrs(slot, made), "arch": arch, "lineage_images": 1000, "mlflow_run_id": "x" * 32}
        trial = create_trial(value=float(rng.uniform(20, 200)), params=dict(slot.params), distributions=dists,
                             user_attrs=attrs, state=TrialState.COMPLETE)
        trial.number = len(made)
        made.append(trial)
        assert json.loads(attrs["genas:plan"]) == slot.params
    return made


def _scale_probe(url: str, name: str, out: "mp.Queue") -> None:
    """In a fresh process: the per-trial costs of a worker joining a study of N trials."""
    import optuna

    from genas.search.ranking import rank_trials
    from genas.search.study import StudySpec, attach_search, open_storage

    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = StudySpec("dggan", "mnist5k", "small", ("swd",), "growth", "none", 0)
    from genas.spaces import get_space

    study = attach_search(optuna.load_study(study_name=name, storage=open_storage(url)), spec, get_space("dggan"),
                          32, url)
    t = {}
    start = time.perf_counter()
    trials = study.get_trials(deepcopy=False)
    t["read_first"] = time.perf_counter() - start
    start = time.perf_counter()
    trials = study.get_trials(deepcopy=False)
    t["read_again"] = time.perf_counter() - start
    start = time.perf_counter()
    study.sampler.beam.next_slot(trials)
    t["plan_first"] = time.perf_counter() - start
    start = time.perf_counter()
    study.sampler.beam.next_slot(trials)
    t["plan_again"] = time.perf_counter() - start
    trial = study.ask()
    start = time.perf_counter()
    study.sampler.claim(trial)
    t["claim"] = time.perf_counter() - start
    complete = [x for x in trials if x.values]
    start = time.perf_counter()
    rank_trials(complete, study.directions)
    t["rank_1"] = time.perf_counter() - start
    for x in complete:  # a second objective, anti-correlated with the first
        x.values = [x.values[0], 250.0 - x.values[0] + (x.number % 7)]
    start = time.perf_counter()
    rank_trials(complete, [study.directions[0]] * 2)
    t["rank_2"] = time.perf_counter() - start
    out.put(t)


def scale_case(storage_kind: str, n: int, pg_admin) -> dict:  # noqa: ANN001
    import optuna

    from genas.search.study import StudySpec, create_or_resume, open_storage

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/optuna.db" if storage_kind == "sqlite" else \
            pg_admin.create(f"genas_bench_{uuid.uuid4().hex[:8]}")
        try:
            name = f"scale-{n}"
            spec = StudySpec("dggan", "mnist5k", "small", ("swd",), "growth", "none", 0)
            study = create_or_resume(name, spec, open_storage(url))
            study.add_trials(synthetic_beam(n))
            queue: mp.Queue = mp.Queue()
            proc = mp.Process(target=_scale_probe, args=(url, name, queue))
            proc.start()
            result = queue.get(timeout=3600)
            proc.join()
            return result
        finally:
            if storage_kind == "postgresql":
                pg_admin.drop(url)
            optuna.logging.set_verbosity(optuna.logging.WARNING)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workers", default="1,4,8")
    p.add_argument("--trials-per-worker", type=int, default=8)
    p.add_argument("--storages", default="sqlite,journal,postgresql")
    p.add_argument("--dggan-trials", type=int, default=3)
    p.add_argument("--scale", default="", help="(c) finished-trial counts, e.g. 100,1000,10000")
    p.add_argument("--scale-storages", default="sqlite,postgresql")
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
    if args.scale:
        print("\n| storage | finished trials | read (first / cached) | plan (first / cached) | claim | "
              "rank 1 obj | rank 2 obj |")
        print("|---|---|---|---|---|---|---|")
        for kind in args.scale_storages.split(","):
            for n in (int(x) for x in args.scale.split(",")):
                r = scale_case(kind, n, pg)
                ms = {k: 1000 * v for k, v in r.items()}
                print(f"| {kind} | {n:,} | {ms['read_first']:.0f} / {ms['read_again']:.0f} ms | "
                      f"{ms['plan_first']:.0f} / {ms['plan_again']:.1f} ms | {ms['claim']:.0f} ms | "
                      f"{ms['rank_1']:.1f} ms | {ms['rank_2']:.1f} ms |", flush=True)
    if not args.storages or not args.workers:
        return
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
