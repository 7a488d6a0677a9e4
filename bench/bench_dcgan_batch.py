"""The no-search DCGAN at the paper's batch (128) and at the issue's textbook batch (64), equal images.

    python bench/bench_dcgan_batch.py --images 20096 --seeds 0,1,2 --out OUT

The reference genas shows beside every champion is the ``dcgan`` space's trial 0: Radford et
al.'s configuration, batch 128. At a CPU budget's 20,000 images that is 157 steps. Issue 11
measured its textbook DCGAN at batch 64 (Adam 2e-4, beta1 0.5) on 30,000 images, 469 steps:
SWD 44.0 and 34.3 at two seeds. This runs both configurations on the same images, as a user
would (``genas search dcgan --set images=N``, the batch-64 configuration queued as trial 1 of
the same study), and re-scores them as ``bench_quality.py`` does (1,000 samples, seed 0; SWD,
``fid_digitnet`` and digits on mnist5k), so the champion's margin can be read against either.
Grids: ``OUT/s<seed>-batch<B>.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bench_quality import machine, run_genas, score, use_home

TEXTBOOK = {"lr": 2e-4, "beta1": 0.5, "batch_size": 64, "width": 64, "loss": "logistic"}


def run(home: Path, dataset: str, images: int, seed: int, trials: int) -> None:
    run_genas(home, ["search", "dcgan", "--dataset", dataset, "--seed", str(seed), "--trials", str(trials),
                     "--set", f"images={images}", "--no-baseline"], home / "search.log")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--images", type=int, default=20_096, help="a champion's lineage images")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", default="bench/results/dcgan-batch")
    args = p.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}", flush=True)
    import optuna

    import genas
    from genas.data import load_dataset
    from genas.images import save_grid

    metrics = ["swd", "fid_digitnet"] if args.dataset in ("mnist5k", "digits") else ["swd"]
    dataset = load_dataset(args.dataset)
    for seed in (int(s) for s in args.seeds.split(",")):
        home = out / f"s{seed}"
        home.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{home / 'optuna.db'}"
        name = f"dcgan-{args.dataset}"
        start = time.perf_counter()
        run(home, args.dataset, args.images, seed, trials=0)  # creates the study; trial 0 is the paper's
        study = optuna.load_study(study_name=name, storage=storage)
        if len(study.trials) < 2:  # a rerun into the same OUT scores the trials it has
            study.enqueue_trial(TEXTBOOK, user_attrs={"textbook": True})
            run(home, args.dataset, args.images, seed, trials=2)
        wall = time.perf_counter() - start
        use_home(home)
        for trial in optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)[:2]:
            generator = genas.load(f"runs:/{trial.user_attrs['mlflow_run_id']}/model")
            batch = trial.params["batch_size"]
            save_grid(generator.sample(64, seed=0), out / f"s{seed}-batch{batch}.png")
            row = {"dataset": args.dataset, "seed": seed, "trial": trial.number, "batch_size": batch,
                   "images": trial.user_attrs.get("lineage_images"), "state": trial.state.name,
                   "wall_seconds_both": round(wall, 1), "load_15min": round(os.getloadavg()[2], 1),
                   "machine": machine(), **score(generator, dataset, metrics)}
            with open(out / "results.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
