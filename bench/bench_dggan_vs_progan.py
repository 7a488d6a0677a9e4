"""dggan against its baseline progan: best SWD and the training images behind it, several seeds.

    python bench/bench_dggan_vs_progan.py [--budget small] [--seeds 0,1] [--dggan-trials 12] [--progan-trials 2]

For every seed, a dggan study (top-k growth search) and a progan study (TPE over the fixed
ProGAN schedule) run on mnist5k through the normal search code, each in its own temporary genas
home. A progan trial trains on ``LINEAGE_DEPTH x`` dggan's images per trial, what a dggan lineage
of typical depth sees, so the comparison is at (about) equal training images for the final
model; the table prints the exact images behind each best model, and the search's total
training images, so that the comparison can be read either way.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings

import optuna
import torch

from genas.search.study import StudySpec, create_or_resume, open_storage
from genas.search.worker import run_worker


def run_study(space: str, budget: str, trials: int, seed: int, sampler: str) -> dict:
    """One study in the current genas home (main sets one for the whole run; study names differ)."""
    from genas.search.objective import Objective
    from genas.spaces.base import get_space

    spec = StudySpec(space, "mnist5k", budget, ("swd",), sampler, get_space(space).default_pruner, seed)
    start = time.perf_counter()
    study = run_worker(create_or_resume(f"{space}-{seed}", spec, open_storage()), spec,
                       n_trials=trials, timeout=None, device="auto")
    seconds = time.perf_counter() - start
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    best = study.best_trial
    per_trial = get_space(space).budget(budget)["images_per_trial"]
    config, _ = Objective.load_trial_state(study, best.number)
    return {"swd": best.value, "images": config.get("lineage_images", per_trial),
            "resolution": 4 * 2 ** (len(config["arch"]["g"]) - 1),
            "search_images": per_trial * len(study.trials), "complete": len(complete),
            "trials": len(study.trials), "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", default="small")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--dggan-trials", type=int, default=12)
    p.add_argument("--progan-trials", type=int, default=2)
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")  # Optuna's experimental-feature notices
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else \
        f"CPU {platform.machine()}, {torch.get_num_threads()} threads"
    print(f"device: {device}; budget {args.budget}; dggan {args.dggan_trials} trials, progan {args.progan_trials} trials")
    print("| seed | space | best swd | images behind best | best res | search images | complete/trials | minutes |")
    print("|---|---|---|---|---|---|---|---|")
    results: dict[str, list[float]] = {"dggan": [], "progan": []}
    home = tempfile.TemporaryDirectory()
    os.environ["GENAS_HOME"] = home.name
    for seed in (int(s) for s in args.seeds.split(",")):
        for space, trials, sampler in (("dggan", args.dggan_trials, "growth"), ("progan", args.progan_trials, "tpe")):
            r = run_study(space, args.budget, trials, seed, sampler)
            results[space].append(r["swd"])
            print(f"| {seed} | {space} | {r['swd']:.2f} | {r['images']} | {r['resolution']} | {r['search_images']} "
                  f"| {r['complete']}/{r['trials']} | {r['seconds'] / 60:.1f} |", flush=True)
    for space, values in results.items():
        spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
        print(f"{space}: mean best swd {statistics.mean(values):.2f}{spread} over {len(values)} seeds")


if __name__ == "__main__":
    main()
