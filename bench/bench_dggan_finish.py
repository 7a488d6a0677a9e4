"""The finalist's finishing generation, retrained from its parent with other options.

    python bench/bench_dggan_finish.py HOME --variants "cooldown=0;cooldown=0.5;cooldown=1" --out OUT

HOME is a genas home that holds a finished dggan search (e.g. a ``bench_quality.py`` home,
``OUT/homes/mnist5k-s0``). Each variant trains the finalist's candidate again, from the parent's
saved state, with the trial's own seed and config and the study's options with the variant's
over them (``KEY=VALUE,KEY=VALUE``; an empty variant is the study's own options, which should
reproduce the finalist on the machine that ran the search), and is scored as ``bench_quality.py``
scores a champion: 1,000 samples (seed 0), SWD, and on digits fid_digitnet, digits and the
readable share, on colour images the colour gap. ``--seed-offset N`` trains the same variant
from another draw (the trial's seed + N), to see how much one draw decides. Results:
``OUT/results.jsonl`` and a markdown table on stdout (with the trial's reports as it trains);
grids ``OUT/<variant>.png``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import machine, score, use_home  # noqa: E402


def parse_variant(text: str) -> dict[str, str]:
    """``KEY=VALUE,KEY=VALUE`` as ``--set`` gives them (the space types and checks them); a comma
    not followed by ``KEY=`` belongs to the value (``augment=translation,cutout``)."""
    return dict(item.strip().partition("=")[::2] for item in re.split(r",(?=\s*\w+=)", text) if item.strip())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("home")
    p.add_argument("--variants", default=";cooldown=0.5", help="';'-separated KEY=VALUE,... lists")
    p.add_argument("--out", required=True)
    p.add_argument("--seed-offset", type=int, default=0,
                   help="added to the trial's seed: the same variant from other draws, to see the noise")
    args = p.parse_args()
    home, out = Path(args.home).resolve(), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    use_home(home)
    import optuna
    import torch

    from genas.data import load_dataset
    from genas.images import save_grid
    from genas.search.beam import FINALIST_ATTR
    from genas.search.objective import Objective, trial_seed
    from genas.search.study import StudySpec
    from genas.spaces import get_space
    from genas.spaces.base import TrialContext

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{home / 'optuna.db'}"
    name = next(s.study_name for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith("dggan-"))
    study = optuna.load_study(study_name=name, storage=storage)
    spec = StudySpec.from_attrs(study.user_attrs, study.study_name)
    finalist = next(t for t in study.get_trials() if t.user_attrs.get(FINALIST_ATTR))
    parent = finalist.user_attrs["parent"]
    dataset = load_dataset(spec.dataset)
    space = get_space("dggan")
    metrics = ["swd", "fid_digitnet"] if dataset.channels == 1 else ["swd"]
    config = {**finalist.params, "parent": parent, "generation": finalist.user_attrs["generation"]}
    print(f"{name}: finalist trial {finalist.number} from trial {parent}, {machine()}")
    rows = []
    for variant in args.variants.split(";"):
        options = space.resolve_options({**spec.options, **parse_variant(variant)})
        space.check(dataset, options, budget=spec.budget)
        ctx = TrialContext(dataset=dataset, budget=spec.budget, device=torch.device("cpu"),
                           seed=trial_seed(spec.seed, finalist.number) + args.seed_offset, options=options,
                           parent_loader=lambda: Objective.load_trial_state(study, parent),
                           reporter=lambda step, metrics: print(f"  {step} images: " + ", ".join(
                               f"{k} {v:.3g}" for k, v in metrics.items()), flush=True))
        start = time.perf_counter()
        generator = space.train(config, ctx)
        seconds = time.perf_counter() - start
        label = (variant or "study") + (f"-seed+{args.seed_offset}" if args.seed_offset else "")
        save_grid(generator.sample(64, seed=0), out / f"{label.replace('=', '').replace(',', '-')}.png")
        row = {"study": name, "variant": label, "seconds": round(seconds, 1), **score(generator, dataset, metrics)}
        rows.append(row)
        with open(out / "results.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    keys = [k for k in rows[0] if k not in ("study",)]
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
