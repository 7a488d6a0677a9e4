"""Periodic artifacts and detail per scale in a model's samples, against the data's.

SWD normalises each pyramid level of each set by the set's own statistics, so a model whose
samples carry a regular grid (the checkerboard of stride-2 transposed convolutions, a gate
computed at a quarter of the resolution and interpolated back) or too little fine detail can
still score well. This script puts numbers on what the grids show, for any genas model:

- ``p2`` / ``p4``: the mean power spectrum of the samples (per image and channel, mean removed)
  at the frequencies of a period of 2 and of 4 pixels (horizontal, vertical, diagonal), divided
  by the median power of their 8 neighbours in the spectrum. A regular grid of that period is a
  sharp peak: far above the data's ratio.
- ``band_<side>``: Haar detail energy at each scale (the image minus its 2x2-block means, then
  the same one level down, ...), the samples' over the data's; 1 = as much detail as the data at
  that scale, near 0 = flat blocks of that size.
- ``frame``: how far each image's outermost 1-pixel ring departs from the ring two pixels further
  in (per image and channel, the two rings' mean values), the samples' over the data's; a frame
  drawn round every sample (a border the padding of the convolutions left) is far above 1.

    python bench/bench_artifacts.py --dataset photos --n 1000 \
        san=models:/genas-san-photos@champion  nrpa=/path/to/home:models:/genas-san-photos@champion

A model is ``LABEL=URI`` or ``LABEL=HOME:URI`` (the genas home its registry lives in).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PERIODS = (2, 4)


def spectrum(images: torch.Tensor) -> torch.Tensor:
    """Mean power spectrum [H, W] over images and channels, each image's mean removed."""
    x = images.float()
    x = x - x.mean(dim=(2, 3), keepdim=True)
    return torch.fft.fft2(x).abs().pow(2).mean(dim=(0, 1))


def peak_ratios(images: torch.Tensor) -> dict[str, float]:
    """``p<period>``: power at that period's frequencies over the median of their neighbours."""
    power = spectrum(images)
    side = power.shape[-1]

    def at(i: int, j: int) -> float:
        return power[i % side, j % side].item()

    out = {}
    for period in PERIODS:
        f = side // period
        points = {(f, 0), (0, f), (f, f), (f, side // 2), (side // 2, f)} if period > 2 else \
            {(f, 0), (0, f), (f, f)}
        peak = sum(at(*p) for p in points)
        around = sum(sorted(at(i + a, j + b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b)[4]
                     for i, j in points)
        out[f"p{period}"] = peak / around
    return out


def band_energy(images: torch.Tensor) -> dict[int, float]:
    """Haar detail energy per scale, finest first: {side: mean square of (level - its 2x2-block means)}."""
    level, out = images.float(), {}
    while level.shape[-1] > 1:
        coarse = F.avg_pool2d(level, 2)
        out[level.shape[-1]] = (level - F.interpolate(coarse, scale_factor=2, mode="nearest")).pow(2).mean().item()
        level = coarse
    return out


def ring_mean(images: torch.Tensor, inset: int) -> torch.Tensor:
    """Per image and channel, the mean of the 1-pixel ring ``inset`` pixels in from the edge [N, C]."""
    x = images.float()
    inner = x[..., inset:x.shape[-2] - inset, inset:x.shape[-1] - inset]
    core = inner[..., 1:-1, 1:-1]
    n_ring = inner.shape[-2] * inner.shape[-1] - core.shape[-2] * core.shape[-1]
    return (inner.sum(dim=(2, 3)) - core.sum(dim=(2, 3))) / n_ring


def frame_contrast(images: torch.Tensor) -> float:
    """Mean |outermost ring - the ring two pixels in| over images and channels."""
    return (ring_mean(images, 0) - ring_mean(images, 2)).abs().mean().item()


def measure(images: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Peak ratios of ``images``, their band energy and frame relative to ``real``'s ([-1, 1] floats)."""
    bands, real_bands = band_energy(images), band_energy(real)
    return {**peak_ratios(images), **{f"band_{s}": bands[s] / real_bands[s] for s in sorted(bands, reverse=True)},
            "frame": frame_contrast(images) / frame_contrast(real)}


def load_samples(spec: str, n: int, seed: int) -> tuple[str, torch.Tensor]:
    from bench_quality import use_home
    from genas import load
    from genas.data import from_uint8

    label, _, where = spec.partition("=")
    home, sep, uri = where.partition(":")
    if sep and not home.startswith(("models", "runs")) and Path(home).is_dir():
        use_home(Path(home))
    else:
        uri = where
    return label, from_uint8(load(uri).sample(n, seed=seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="LABEL=URI or LABEL=HOME:URI")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from genas.data import load_dataset

    images = load_dataset(args.dataset).images
    split = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(args.seed))
    half = min(args.n, images.shape[0] // 2)  # a dataset under 2n images: its two halves
    real, other = images[split[:half]], images[split[half:2 * half]]
    rows = [("data (another half)", measure(other, real))]
    rows += [(label, measure(fake, real)) for label, fake in (load_samples(s, args.n, args.seed) for s in args.models)]
    keys = list(rows[0][1])
    print("| model | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for label, values in rows:
        print(f"| {label} | " + " | ".join(f"{values[k]:.2f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
