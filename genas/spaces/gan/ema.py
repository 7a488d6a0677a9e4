"""The exponential moving average of the generator's weights: what a GAN trial samples from.

``G_ema <- lerp(G_ema, G, 1 - beta)`` after every G step with ``beta = 0.5 ** (batch / half_life)``:
the half-life is in images, so it means the same at any batch size (StyleGAN's ``ema_kimg``).
With a ramp-up, the half-life is at most ``rampup x images seen``: early on, and after a new
layer appears, the average does not drag weights that no longer exist into the samples.
Buffers (batch-norm statistics) are copied, not averaged. A half-life of 0 turns the average
off: :attr:`model` is then the generator itself (the textbook DCGAN samples from G).
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, source: nn.Module, half_life: float, target: nn.Module | None = None,
                 rampup: float | None = None) -> None:
        self.source, self.half_life, self.rampup = source, float(half_life), rampup
        if self.half_life <= 0:
            self.model = source
        else:
            self.model = target if target is not None else copy.deepcopy(source)
            self.model.eval().requires_grad_(False)
        self._pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    @property
    def enabled(self) -> bool:
        return self.model is not self.source

    def beta(self, batch: int, images: int | None = None) -> float:
        half_life = self.half_life
        if self.rampup is not None and images is not None:
            half_life = min(half_life, self.rampup * images)
        return 0.5 ** (batch / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, batch: int, images: int | None = None) -> None:
        """After a G step on ``batch`` images; ``images``: seen so far (for the ramp-up)."""
        if not self.enabled:
            return
        if self._pairs is None:
            self._pairs = (list(self.model.parameters()), list(self.source.parameters()))
        torch._foreach_lerp_(self._pairs[0], self._pairs[1], 1.0 - self.beta(batch, images))
        for mine, theirs in zip(self.model.buffers(), self.source.buffers()):
            mine.copy_(theirs)
