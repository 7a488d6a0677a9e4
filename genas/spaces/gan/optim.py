"""Optimisers as a trial's config names them: Adam (the GANs' default) or AdamW."""
from __future__ import annotations

from typing import Iterable

import torch

from genas.errors import GenasError

OPTIMIZERS = ("adam", "adamw")


def optimizer(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.0, 0.99),
              kind: str = "adam", weight_decay: float = 0.0, eps: float = 1e-8) -> torch.optim.Optimizer:
    """Adam with ProGAN / StyleGAN's ``betas=(0, 0.99)`` unless told; ``adamw`` decouples the decay."""
    betas = (float(betas[0]), float(betas[1]))
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    raise GenasError(f"unknown optimizer {kind!r}; use one of {', '.join(OPTIMIZERS)}")


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
