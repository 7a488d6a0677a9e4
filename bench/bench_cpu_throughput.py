"""How to spend a CPU's cores on dggan training: threads, processes side by side, memory layout.

    python bench/bench_cpu_throughput.py [--images 1600] [--reps 2]

Trains the README main job's finalist networks (the `small` champion path at 32x32, random
weights: speed does not depend on them) with the shared loop at batch 16, and prints ms per
training image for: one process at all torch threads; one process at one thread; one one-thread
process per core, side by side (the throughput a search would get from running a generation's
candidates in parallel processes); and, alternating in fresh processes, contiguous against
channels_last networks and real batches. Every measurement runs in its own process after a
warm-up of a tenth of its images.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

# The main job's finalist (mnist5k, seed 0, small): root 64ch -> 4->8 64ch -> 8->16 32ch -> 16->32 32ch, D +conv @32.
ARCH = {"latent": 64, "image_channels": 1, "g_dense": 64,
        "g": [[{"channels": 64, "kernel": 3}], [{"channels": 64, "kernel": 3}] * 2,
              [{"channels": 32, "kernel": 3}] * 2, [{"channels": 32, "kernel": 3}] * 2],
        "d": [[], [{"channels": 64, "kernel": 3}] * 2, [{"channels": 32, "kernel": 3}] * 2,
              [{"channels": 32, "kernel": 3}] * 3],
        "d_head": {"channels": 64, "kernel": 3}}


def measure(images: int, layout: str) -> float:
    """ms per image of the shared loop on ARCH (this process's threads)."""
    import torch

    import genas.spaces.gan.device as device
    from genas.data import load_dataset
    from genas.spaces.base import TrialContext
    from genas.spaces.gan import EMA, GANLoss, Recipe, train_gan
    from genas.spaces.gan.grown import Nets
    from genas.spaces.progress import Progress

    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    device.memory_format = lambda _device: fmt  # the real batches' layout; the networks' below
    torch.manual_seed(0)
    nets = Nets(ARCH).to(memory_format=fmt)
    data = load_dataset("mnist5k")
    ctx = TrialContext(dataset=data, budget="small", device=torch.device("cpu"), seed=0)
    recipe = Recipe(loss=GANLoss("logistic", r1_gamma=10.0), lr_g=4e-3, lr_d=4e-3, batch_size=16)
    ema = EMA(nets.G, 2_000, target=nets.G_ema, rampup=0.5)

    def run(n: int) -> float:
        start = time.perf_counter()
        train_gan(nets.G, nets.D, ema, data.images, recipe, n, ctx, Progress(ctx, n, 1), snapshot=lambda: None)
        return (time.perf_counter() - start) / n * 1e3

    run(max(images // 10, 16))
    return run(images)


def spawn(images: int, threads: int, layout: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, __file__, "--child", layout, "--images", str(images),
                             "--threads", str(threads)], env=env, stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a measurement failed (exit {proc.returncode})")
    return float(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=1_600)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--child", choices=("contiguous", "channels_last"))
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(f"{measure(args.images, args.child):.3f}")
        return
    cores = os.cpu_count() or 1
    rows: dict[str, list[float]] = {}
    for _ in range(args.reps):
        rows.setdefault(f"1 process, {cores} threads", []).append(result(spawn(args.images, cores, "contiguous")))
        rows.setdefault("1 process, 1 thread", []).append(result(spawn(args.images, 1, "contiguous")))
        side = [spawn(args.images, 1, "contiguous") for _ in range(cores)]
        rows.setdefault(f"{cores} processes side by side, 1 thread each", []).extend(result(s) for s in side)
    for _ in range(args.reps + 1):
        for layout in ("contiguous", "channels_last"):
            rows.setdefault(f"1 process, {cores} threads, {layout}", []).append(
                result(spawn(args.images, cores, layout)))
    print("| setting | ms/image (each run) | images/ms, all processes |\n|---|---|---|")
    for name, values in rows.items():
        per = statistics.median(values)
        processes = cores if "side by side" in name else 1
        print(f"| {name} | {', '.join(f'{v:.2f}' for v in values)} | {processes / per:.3f} |")


if __name__ == "__main__":
    main()
