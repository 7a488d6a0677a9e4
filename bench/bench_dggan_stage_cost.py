"""What a dggan lineage's 16x16 and 32x32 stages cost to train, by the width and kernel they draw.

    python bench/bench_dggan_stage_cost.py [--budget small] [--images 640] [--rounds 2] [--device auto]

For every width x kernel the budget's search could give the 16x16 stage and the 32x32 stage (the
width rule applied, both kernels allowed), a 32x32 lineage (root and 8x8 stage at the narrowest
width, 3x3) trains ``--images`` images in ``bench_train``'s plain loop (the kit's loss with lazy
R1, Adam, the budget's batch), all side by side in one process, in ``--rounds`` interleaved
rounds. The figure is seconds per 1,000 images, the fastest round's (a stall of the machine
shows as one slow round, not as the configuration's cost); "kernel rule" marks the combinations
``actions.kernels_at`` still allows (3x3 above 8x8).
"""
from __future__ import annotations

import argparse
from itertools import product

import torch

from bench_train import plain_loop
from genas.search.objective import resolve_device
from genas.spaces import get_space
from genas.spaces.dggan.actions import apply_action, channels_at, kernels_at
from genas.spaces.gan.grown import root_arch


def lineage(latent: int, base: int, stage16: tuple[int, int], stage32: tuple[int, int]) -> dict:
    arch = root_arch(latent, 1, base, 3)
    for width, kernel in ((base, 3), stage16, stage32):
        arch, _ = apply_action(arch, {"action": "grow", "channels": width, "kernel": kernel})
    return arch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", default="small")
    p.add_argument("--images", type=int, default=640)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    b = get_space("dggan").budget(args.budget)
    widths, kernels = b["widths"], b["kernels"]
    images = torch.rand(1024, 1, 32, 32, device=device) * 2 - 1  # the cost does not depend on the pixels
    combos = list(product(product(channels_at(widths, 16), kernels), product(channels_at(widths, 32), kernels)))
    plain_loop(lineage(b["latent"], min(widths), *combos[0]), images, device, b["batch_size"], 4 * b["batch_size"],
               2e-3, b["r1_gamma"])  # warm-up
    dev = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {dev}   budget: {args.budget}   batch {b['batch_size']}   {args.images} images a row, "
          f"fastest of {args.rounds} rounds")
    seconds: dict = {combo: [] for combo in combos}
    for _ in range(args.rounds):
        for s16, s32 in combos:
            ips = plain_loop(lineage(b["latent"], min(widths), s16, s32), images, device, b["batch_size"],
                             args.images, 2e-3, b["r1_gamma"])
            seconds[(s16, s32)].append(1000 / ips)
    print("| 16×16 stage | 32×32 stage | s / 1,000 images | kernel rule |\n|---|---|---|---|")
    costs = {}
    for (s16, s32), rounds in seconds.items():
        allowed = s16[1] in kernels_at(kernels, 16) and s32[1] in kernels_at(kernels, 32)
        costs[(s16, s32)] = (min(rounds), allowed)
        print(f"| {s16[0]}ch {s16[1]}×{s16[1]} | {s32[0]}ch {s32[1]}×{s32[1]} | {min(rounds):.1f} | "
              f"{'allowed' if allowed else '-'} |")
    every = [c for c, _ in costs.values()]
    kept = [c for c, ok in costs.values() if ok]
    print(f"range, every combination: {min(every):.1f}-{max(every):.1f} s ({max(every) / min(every):.1f}x); "
          f"with the kernel rule: {min(kept):.1f}-{max(kept):.1f} s ({max(kept) / min(kept):.1f}x)")


if __name__ == "__main__":
    main()
