"""What one dggan lineage gains from a training change: the same growth path, trained side by side.

    python bench/bench_dggan_lineage.py --seeds 0,1 --variants "base;batch_size=16;images=2"

Trains the README champion's path (root 32ch 3x3 -> grow 4->8 64ch 3x3 -> grow 8->16 32ch 3x3 ->
grow 16->32 32ch 3x3 -> D +conv 32ch 3x3 @32) at ``small`` on mnist5k, one candidate per
generation as the beam would (each generation's images, the saved state handed to the next), once
per variant and seed. A variant is ``;``-separated, each a ``,``-joined list of changes:

- ``images=X``: every generation trains X times its images (the lineage X times 20,000);
- ``floor=N``: every generation trains at least N images (low resolutions are cheap per image);
- ``finish=N``: one generation more, a ``train on`` child of N images;
- ``finish_lr=X``: that child trains at learning rate X (the lineage's otherwise);
- ``batch_size=``, ``ema_half_life=``, ``fade=``: the budget's value;
- ``lr=``, ``r1_gamma=``, ``loss=``, ``augment=``: the study option (``--set``).

For the 32x32 model at the end it prints the SWD of 1,000 samples of the EMA generator, its
``fid_digitnet``, how many digits they spread over (``bench_quality.digit_classes``) and the share
that digitnet reads with confidence (``bench_quality.recognisable``), the lineage's images and
seconds; ``--grids DIR`` saves each variant's 64 samples. Variants that differ only in their
finishing generation (``finish``, ``finish_lr``) finish the same trained parent (per seed, in one
run), so they compare the finishing alone; their seconds include the parent's.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import optuna
import torch

from bench_dggan_r1 import config_for
from bench_quality import digit_classes, machine, recognisable
from genas.data import load_dataset, to_uint8
from genas.evaluators import evaluate
from genas.spaces import TrialContext, get_space

LINEAGE = [{"action": "root", "channels": 32, "kernel": 3}, {"action": "grow", "channels": 64, "kernel": 3},
           {"action": "grow", "channels": 32, "kernel": 3}, {"action": "grow", "channels": 32, "kernel": 3},
           {"action": "d_layer", "channels": 32, "kernel": 3}]
BUDGET_KEYS = {"batch_size": int, "ema_half_life": float, "fade": float}
OPTION_KEYS = ("lr", "r1_gamma", "loss", "augment")


def parse_variant(text: str) -> tuple[dict, dict, float, int, int, float | None]:
    """``"batch_size=16,lr=1e-3"`` -> (budget overrides, study options, images factor, images floor,
    finishing images, finishing learning rate)."""
    budget, options, factor, floor, finish, finish_lr = {}, {}, 1.0, 0, 0, None
    for change in filter(None, (c.strip() for c in text.split(","))):
        if change == "base":
            continue
        key, value = change.split("=", 1)
        if key == "images":
            factor = float(value)
        elif key == "floor":
            floor = int(value)
        elif key == "finish":
            finish = int(value)
        elif key == "finish_lr":
            finish_lr = float(value)
        elif key in BUDGET_KEYS:
            budget[key] = BUDGET_KEYS[key](value)
        elif key in OPTION_KEYS:
            options[key] = value.replace("/", ",")
        else:
            raise SystemExit(f"unknown change {key!r}; use images, {', '.join(BUDGET_KEYS)} or {', '.join(OPTION_KEYS)}")
    if finish_lr is not None and not finish:
        raise SystemExit(f"variant {text!r}: finish_lr needs finish=N")
    return budget, options, factor, floor, finish, finish_lr


#: per (seed, the variant's changes but the finishing ones): the trained parent's state, its
#: generator and seconds, so that finishing variants in one run finish the same parent
PARENTS: dict[tuple[int, str], tuple[tuple[dict, dict], object, float]] = {}


def train_candidate(space, data, seed: int, options: dict, action: dict, generation: int, lr: float,  # noqa: ANN001
                    saved: list):
    """One candidate as the beam trains it: ``saved[0]`` its parent's state, then its own."""
    ctx = TrialContext(dataset=data, budget="small", device=torch.device("cpu"), seed=seed, options=options,
                       parent_loader=lambda: saved[0],
                       state_saver=lambda config, tensors: saved.__setitem__(0, (config, tensors)))
    return space.train(config_for(space, action, None if generation == 0 else generation - 1, generation, lr), ctx)


def lineage(variant: str, seed: int, data, grids: Path | None) -> dict:  # noqa: ANN001
    import genas.spaces.dggan.space as dggan_space

    budget, raw_options, factor, floor, finish, finish_lr = parse_variant(variant)
    space = get_space("dggan")
    saved_budget = dict(dggan_space.BUDGETS["small"])
    dggan_space.BUDGETS["small"].update(budget)
    try:
        if factor != 1.0:
            base = space.settings(space.resolve_options({}), "small", data.resolution)
            raw_options["images"] = str(round(base["schedule"][0] * factor))
        key = (seed, repr((sorted(budget.items()), sorted(raw_options.items()), factor, floor)))
        options = space.resolve_options({**raw_options, "finish": str(finish)})
        settings = space.settings(options, "small", data.resolution)
        if floor:
            schedule = [max(images, floor) for images in settings["schedule"]]
            space.settings = lambda *args, **kwargs: {**type(space).settings(space, *args, **kwargs),
                                                       "schedule": schedule}
        if key not in PARENTS:
            saved: list = [None]
            start = time.perf_counter()
            for generation, action in enumerate(LINEAGE):
                generator = train_candidate(space, data, seed, options, action, generation, settings["lr"], saved)
            PARENTS[key] = (saved[0], generator, time.perf_counter() - start)
        parent, generator, seconds = PARENTS[key]
        images = parent[0]["lineage_images"]
        if finish:  # images_at gives the generation after the plan the study's finish
            saved = [parent]
            start = time.perf_counter()
            generator = train_candidate(space, data, seed, options, {"action": "train", "channels": 32, "kernel": 3},
                                        len(LINEAGE), finish_lr or settings["lr"], saved)
            seconds += time.perf_counter() - start
            images = saved[0][0]["lineage_images"]
    finally:
        dggan_space.BUDGETS["small"].clear()
        dggan_space.BUDGETS["small"].update(saved_budget)
        space.__dict__.pop("settings", None)
    fake = generator.sample(1_000, seed=0)
    scores = evaluate(fake, data, ["swd", "fid_digitnet"], n_real=1_000, seed=0)
    if grids is not None:
        from genas.images import save_grid
        save_grid(fake[:64], grids / f"{variant.replace('=', '').replace(',', '_').replace('/', '-')}-s{seed}.png")
    return {"variant": variant, "seed": seed, "images": images, "swd": scores["swd"],
            "fid_digitnet": scores["fid_digitnet"], "digits": digit_classes(fake), "recognisable": recognisable(fake),
            "seconds": seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default="base", help="';'-separated; each a ','-joined list of changes")
    p.add_argument("--seeds", default="0")
    p.add_argument("--grids", default="", help="a folder for each variant's 64-sample grid")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grids = Path(args.grids) if args.grids else None
    if grids is not None:
        grids.mkdir(parents=True, exist_ok=True)
    data = load_dataset("mnist5k")
    real = to_uint8(data.images[torch.randperm(len(data.images), generator=torch.Generator().manual_seed(0))[:1_000]])
    print(f"machine: {machine()}; the data: {digit_classes(real):.2f} digits, "
          f"{recognisable(real):.3f} recognisable", flush=True)
    rows = []
    for variant in args.variants.split(";"):  # variants outermost: a partial run still compares seeds
        for seed in map(int, args.seeds.split(",")):
            row = lineage(variant, seed, data, grids)
            print(f"{variant:30s} seed {seed} images {row['images']:6d} swd {row['swd']:6.1f} "
                  f"fid_digitnet {row['fid_digitnet']:6.0f} digits {row['digits']:.2f} "
                  f"recognisable {row['recognisable']:.3f} ({row['seconds']:.0f} s)", flush=True)
            rows.append(row)
    print("\n| variant | seed | lineage images | SWD | fid_digitnet | digits | recognisable | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['seed']} | {r['images']:,} | {r['swd']:.1f} | {r['fid_digitnet']:.0f} | "
              f"{r['digits']:.2f} | {r['recognisable']:.3f} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
