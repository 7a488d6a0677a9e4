"""Time to score N generated images at 32x32 with SWD and FID (warm real-statistics cache).

    python bench/bench_eval.py [--n 10000] [--device auto] [--metrics swd,fid,fid_digitnet]

The fakes are N images resampled from mnist5k with pixel noise (a stand-in for a generator's
output; the metric code does not care where images come from). Each metric is timed on its own
after one warm-up call that fills the real-data cache, so the figure is what a trial pays.
Metrics whose weights are missing (``fid`` offline) are reported as skipped, not faked.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from genas.data import load_dataset, to_uint8
from genas.errors import GenasError
from genas.evaluators import evaluate, preflight
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


if __name__ == "__main__":
    main()
