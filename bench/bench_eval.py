"""Time to score N generated images at 32x32 with SWD and FID (warm real-statistics cache).

    python bench/bench_eval.py [--n 10000] [--device auto] [--metrics swd,fid,fid_digitnet]

The fakes are N images resampled from mnist5k with pixel noise (a stand-in for a generator's
output; the metric code does not care where images come from). Each metric is timed on its own
after one warm-up call that fills the real-data cache, so the figure is what a trial pays.
Metrics whose weights are missing (``fid`` offline) are reported as skipped, not faked. On a CPU
it then times SWD's sort, one thread against ``swd._sort_rows``'s parallel row blocks.
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from genas.data import load_dataset, to_uint8
from genas.errors import GenasError
from genas.evaluators import evaluate, preflight, swd
from genas.search.objective import resolve_device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--device", default="auto")
    p.add_argument("--metrics", default="swd,fid,fid_digitnet")
    args = p.parse_args()
    device = resolve_device(args.device)
    dataset = load_dataset("mnist5k")
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(len(dataset), (args.n,), generator=g)
    fake = to_uint8(dataset.images[idx] + 0.1 * torch.randn(args.n, *dataset.images.shape[1:], generator=g))
    print(f"device: {device_name(device)}; torch {torch.__version__}; n={args.n} at {dataset.resolution}x{dataset.resolution}")
    print("| metric | seconds (warm cache) | value |\n|---|---|---|")
    total = 0.0
    for metric in args.metrics.split(","):
        try:
            preflight([metric])
        except GenasError as exc:
            print(f"| {metric} | skipped: {str(exc)[:80]}… | |")
            continue
        evaluate(fake[:64], dataset, [metric], device=device, n_real=len(dataset))  # fills the cache
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = evaluate(fake, dataset, [metric], device=device, n_real=len(dataset))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        total += seconds
        print(f"| {metric} | {seconds:.2f} | {out[metric]:.3f} |")
    print(f"| total | {total:.2f} | |")
    if device.type == "cpu" and "swd" in args.metrics.split(","):
        compare_sorts(args.n)


def compare_sorts(n: int) -> None:
    """SWD's hot spot on a CPU, side by side: one direction block's projections (128 rows of
    n x 128 values) sorted by numpy in one thread, and by ``swd._sort_rows`` (row blocks in
    parallel threads)."""
    x = torch.randn(swd.DIRS_PER_REPEAT, n * swd.NHOODS_PER_IMAGE, generator=torch.Generator().manual_seed(0))
    timings = {}
    for name, sort in (("numpy, one thread", lambda: np.sort(x.numpy(), axis=1)),
                       (f"swd._sort_rows, {torch.get_num_threads()} threads", lambda: swd._sort_rows(x))):
        sort()
        start = time.perf_counter()
        for _ in range(3):
            sort()
        timings[name] = (time.perf_counter() - start) / 3
    (a, ta), (b, tb) = timings.items()
    print(f"SWD's sort of 128 x {x.shape[1]:,}: {a} {ta:.3f} s, {b} {tb:.3f} s ({ta / tb:.2f}x)")


if __name__ == "__main__":
    main()
