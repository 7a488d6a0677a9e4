"""How much a registered champion's SWD moves between draws of 1,000 samples.

    python bench/bench_swd_noise.py --home OUT/homes/photos-s2 --dataset photos --spaces dggan,progan

``bench_quality.py`` scores each champion once (1,000 samples, seed 0). Two champions a few
points apart may differ by the draw alone: this re-scores the champions registered in a genas
home (``models:/genas-<space>-<dataset>@champion``) at ``--draws`` sample seeds (fakes and the
real sample both redrawn) and prints each score, the mean and the standard deviation.
"""
from __future__ import annotations

import argparse
import statistics

from bench_quality import SAMPLES, machine, use_home


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", required=True, help="a genas home (a bench_quality.py home)")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--spaces", default="dggan,progan")
    p.add_argument("--draws", type=int, default=5)
    args = p.parse_args()
    use_home(args.home)
    import genas
    from genas.data import load_dataset
    from genas.evaluators import evaluate

    dataset = load_dataset(args.dataset)
    print(f"machine: {machine()}; {args.draws} draws of {SAMPLES:,} samples", flush=True)
    print("| space | SWD per draw | mean ± sd |\n|---|---|---|")
    for space in args.spaces.split(","):
        generator = genas.load(f"models:/genas-{space}-{args.dataset}@champion")
        scores = [evaluate(generator.sample(SAMPLES, seed=s), dataset, ["swd"], n_real=SAMPLES, seed=s)["swd"]
                  for s in range(args.draws)]
        print(f"| {space} | {', '.join(f'{v:.1f}' for v in scores)} | "
              f"{statistics.mean(scores):.1f} ± {statistics.stdev(scores):.1f} |", flush=True)


if __name__ == "__main__":
    main()
