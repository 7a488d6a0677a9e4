"""Where a dggan lineage loses its variety, and R1's weight: one fixed lineage, stage by stage.

    python bench/bench_dggan_r1.py --r1 1,10 --seeds 1,2

Trains the same lineage for each R1 weight (``--set r1_gamma``) and seed at ``--budget`` on
mnist5k, one candidate per generation as the beam would (each generation's images, the EMA
generator, the saved state handed to the next): root 64ch 5x5 -> grow 4->8 32ch 3x3 -> grow
8->16 32ch 3x3 -> D +conv 32ch 5x5 -> grow 16->32 32ch 5x5 (the lineage of the seed-1 champion
at R1 1). After every candidate it prints the SWD of 1,000 samples of the EMA generator and how
many digits they spread over (``bench_quality.digit_classes``: 10 for the ten digits in equal
shares, 1 for one digit), and D's mean scores on real and fake images over the last report.
"""
from __future__ import annotations

import argparse
import time

import optuna
import torch

from bench_quality import digit_classes, machine
from genas.data import load_dataset
from genas.evaluators import evaluate
from genas.spaces import TrialContext, get_space

LINEAGE = [{"action": "root", "channels": 64, "kernel": 5}, {"action": "grow", "channels": 32, "kernel": 3},
           {"action": "grow", "channels": 32, "kernel": 3}, {"action": "d_layer", "channels": 32, "kernel": 5},
           {"action": "grow", "channels": 32, "kernel": 5}]


def config_for(space, action: dict, parent: int | None, generation: int, lr: float) -> dict:  # noqa: ANN001
    """The trial config the growth sampler would give this candidate."""
    study = optuna.create_study()
    study.enqueue_trial({**action, "lr": lr})
    trial = study.ask()
    trial.set_user_attr("parent", parent)
    trial.set_user_attr("generation", generation)
    return space.suggest(trial, None)


def lineage(r1_gamma: float, seed: int, lr: float, budget: str) -> list[dict]:
    space, data = get_space("dggan"), load_dataset("mnist5k")
    options = space.resolve_options({"r1_gamma": str(r1_gamma)})
    saved: list = [None]
    rows = []
    for generation, action in enumerate(LINEAGE):
        reports: list[dict] = []
        ctx = TrialContext(dataset=data, budget=budget, device=torch.device("cpu"), seed=seed, options=options,
                           reporter=lambda step, m: reports.append(m), parent_loader=lambda: saved[0],
                           state_saver=lambda config, tensors: saved.__setitem__(0, (config, tensors)))
        parent_arch = saved[0][0]["arch"] if saved[0] else None
        start = time.perf_counter()
        generator = space.train(config_for(space, action, None if generation == 0 else generation - 1,
                                           generation, lr), ctx)
        fake = generator.sample(1_000, seed=0)
        swd = evaluate(fake, data, ["swd"], n_real=1_000, seed=0)["swd"]
        row = {"r1_gamma": r1_gamma, "seed": seed, "generation": generation,
               "candidate": space.action_label(action, parent_arch),
               "resolution": fake.shape[-1], "swd": swd, "classes": digit_classes(fake),
               "d_real": reports[-1]["d_real"], "d_fake": reports[-1]["d_fake"],
               "seconds": time.perf_counter() - start}
        print(f"r1 {r1_gamma:g} seed {seed} gen {generation} {row['resolution']:2d}x{row['resolution']:<2d} "
              f"swd {swd:6.1f} classes {row['classes']:.2f} D(real) {row['d_real']:+.2f} "
              f"D(fake) {row['d_fake']:+.2f} ({row['seconds']:.0f} s)", flush=True)
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--r1", default="1,10", help="R1 weights, comma-separated")
    p.add_argument("--seeds", default="1")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--budget", default="small", help="tiny: a smoke run")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"machine: {machine()}", flush=True)
    rows = [row for seed in map(int, args.seeds.split(",")) for r1 in map(float, args.r1.split(","))
            for row in lineage(r1, seed, args.lr, args.budget)]
    print("\n| R1 weight | seed | generation | candidate | SWD | digits spread over | D(real) | D(fake) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['r1_gamma']:g} | {r['seed']} | {r['generation']} | {r['candidate']} | {r['swd']:.1f} | "
              f"{r['classes']:.2f} | {r['d_real']:+.2f} | {r['d_fake']:+.2f} |")


if __name__ == "__main__":
    main()
