"""How much of the gap between a dggan finalist and its parent is sampling noise.

    python bench/bench_paired_choice.py HOME [--study dggan-mnist5k] [--draws 6]

HOME is a genas home that holds a finished dggan search (e.g. a ``bench_quality.py`` home,
``OUT/homes/mnist5k-s0``). The finalist and its parent are each scored on ``--draws`` latent
draws of the study's own sample count, against the study's real draw and SWD directions (the
study's seed), as the search scores them. Printed: both models' SWD per draw, and the finalist
minus the parent when both use the same draw (paired, what the champion's choice now uses) and
across different draws (what two trials' own scores compare).
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import use_home  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("home")
    p.add_argument("--study", default="dggan-mnist5k")
    p.add_argument("--draws", type=int, default=6)
    args = p.parse_args()
    home = Path(args.home).resolve()
    use_home(home)
    import optuna

    from genas.data import load_dataset
    from genas.evaluators import evaluate
    from genas.registry.model import load_generator
    from genas.search.study import StudySpec
    from genas.spaces import get_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args.study, storage=f"sqlite:///{home / 'optuna.db'}")
    spec = StudySpec.from_attrs(study.user_attrs, study.study_name)
    finalist = next(t for t in study.get_trials() if t.user_attrs.get("finalist"))
    parent = next(t for t in study.get_trials() if t.number == finalist.user_attrs["parent"])
    print(f"finalist: trial {finalist.number}, own score {finalist.values[0]:.3f}, its parent re-scored on "
          f"its draw {finalist.user_attrs.get('parent_values')}; parent: trial {parent.number}, own score "
          f"{parent.values[0]:.3f}")
    dataset = load_dataset(spec.dataset)
    budget = get_space(spec.space).budget(spec.budget)
    n = budget.get("swd_samples", budget["eval_samples"])
    swd: dict[str, list[float]] = {}
    for name, trial in (("finalist", finalist), ("parent", parent)):
        generator = load_generator(f"runs:/{trial.user_attrs['mlflow_run_id']}/model")
        swd[name] = [evaluate(generator.sample(n, seed=10_007 * (d + 1)), dataset, ["swd"], seed=spec.seed,
                              swd_fakes=n)["swd"] for d in range(args.draws)]
        print(f"{name:9s}", " ".join(f"{v:6.2f}" for v in swd[name]))
    paired = [f - p for f, p in zip(swd["finalist"], swd["parent"])]
    separate = [swd["finalist"][i] - swd["parent"][j] for i, j in itertools.permutations(range(args.draws), 2)]
    print("| finalist − parent | mean | SD | finalist better |\n|---|---|---|---|")
    for label, diffs in (("same draw (paired)", paired), ("different draws", separate)):
        print(f"| {label} | {statistics.mean(diffs):.2f} | {statistics.stdev(diffs):.2f} | "
              f"{sum(d < 0 for d in diffs)} of {len(diffs)} |")


if __name__ == "__main__":
    main()
