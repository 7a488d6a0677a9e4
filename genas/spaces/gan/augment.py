"""Differentiable augmentation of everything D sees (DiffAugment, Zhao et al. 2020).

A dataset of a few thousand images (mnist5k has 5,000) lets D memorise the reals within a few
epochs; augmenting real *and* fake images, differentiably so that G's gradient passes through,
keeps D from doing so without changing what G has to learn (each transform is applied to both).
Policies, comma-separated: ``translation`` (shift by up to 1/8 of the side, zero padding),
``cutout`` (one zeroed square of half the side), ``color`` (brightness, saturation, contrast).
Each image in the batch draws its own transform; the empty policy is the identity.

Augmenting every image can leak into G's samples (Karras et al. 2020; on mnist5k, translation on
every image moved dggan's finalist toward round digits, bench/README.md). ``AdaptiveProbability``
applies the policy to each image with a probability p that follows D's overfitting instead (ADA):
every few D steps, r = E[sign(D(real))], the share of real images D scores as real taken to
[-1, 1]; p rises while r is above the target (D is sure of the training images) and falls below.
"""
from __future__ import annotations

import torch

from genas.errors import GenasError

POLICIES = ("translation", "cutout", "color")


def parse_policy(policy: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise GenasError(f"unknown augmentation {', '.join(unknown)}; use a comma-separated subset of "
                         f"{', '.join(POLICIES)} (or nothing)")
    return names


def color(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    brightness = torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5
    x = x + brightness
    if x.shape[1] > 1:  # saturation needs colour
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (2 * torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype)) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    n, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :, None] + dy).clamp(-1, h) + 1  # 0 and h+1: the padding
    cols = (torch.arange(w, device=x.device)[None, None, :] + dx).clamp(-1, w) + 1
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last if x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h - ch + 1, (n, 1, 1), device=x.device)
    left = torch.randint(0, w - cw + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


class DiffAugment:
    """``augment(x)``: the policy's transforms in the order color, translation, cutout, applied to
    each image with probability ``p`` (1: every image)."""

    def __init__(self, policy: str = "", p: float = 1.0) -> None:
        names = parse_policy(policy)
        self.policy = tuple(name for name in POLICIES if name in names)
        self.p = p

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.p <= 0:
            return x
        out = x
        for name in self.policy:
            out = _TRANSFORMS[name](out)
        if self.p >= 1:
            return out
        chosen = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < self.p
        return torch.where(chosen, out, x)


class AdaptiveProbability:
    """ADA's controller: ``update(d_real)`` after every D step; every ``interval`` steps it moves
    ``augment.p`` by ±(images since the last move) / ``speed_images`` toward r = ``target``, so p
    can go from 0 to 1 in ``speed_images`` images. p starts at 0."""

    def __init__(self, augment: DiffAugment, target: float, speed_images: int, interval: int = 4) -> None:
        if not 0.0 < target < 1.0:
            raise GenasError(f"adaptive augmentation target {target:g} must lie in (0, 1); ADA's is 0.6")
        self.augment, self.target, self.speed_images, self.interval = augment, target, speed_images, interval
        self.augment.p = 0.0
        self._signs = self._images = self._steps = 0

    def update(self, d_real: torch.Tensor) -> None:
        self._signs += d_real.sign().sum()  # a tensor: no device sync until the move
        self._images += d_real.numel()
        self._steps += 1
        if self._steps % self.interval:
            return
        r = float(self._signs) / self._images
        step = self._images / self.speed_images
        self.augment.p = min(max(self.augment.p + (step if r > self.target else -step), 0.0), 1.0)
        self._signs = self._images = 0
