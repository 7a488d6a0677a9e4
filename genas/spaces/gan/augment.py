"""Differentiable augmentation of everything D sees (DiffAugment, Zhao et al. 2020).

A dataset of a few thousand images (mnist5k has 5,000) lets D memorise the reals within a few
epochs; augmenting real *and* fake images, differentiably so that G's gradient passes through,
keeps D from doing so without changing what G has to learn (each transform is applied to both).
Policies, comma-separated: ``translation`` (shift by up to 1/8 of the side, zero padding),
``cutout`` (one zeroed square of half the side), ``color`` (brightness, saturation, contrast).
Each image in the batch draws its own transform; the empty policy is the identity.
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
    """``augment(x)``: the policy's transforms in the order color, translation, cutout."""

    def __init__(self, policy: str = "") -> None:
        names = parse_policy(policy)
        self.policy = tuple(p for p in POLICIES if p in names)

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.policy:
            x = _TRANSFORMS[name](x)
        return x
