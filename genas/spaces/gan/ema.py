"""The exponential moving average of the generator's weights: what a GAN trial samples from.

``G_ema <- lerp(G_ema, G, 1 - beta)`` after every G step with ``beta = 0.5 ** (batch / half_life)``:
the half-life is in images, so it means the same at any batch size (StyleGAN's ``ema_kimg``).
With a ramp-up, the half-life is at most ``rampup x images seen``: early on, and after a new
layer appears, the average does not drag weights that no longer exist into the samples.
Buffers (batch-norm statistics) are copied, not averaged. A half-life of 0 turns the average
off: :attr:`model` is then the generator itself (the textbook DCGAN samples from G).

A grown GAN trains each architecture for a span of images (a ProGAN phase, a DGGAN child);
:func:`half_life_within` keeps the average inside that span.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

SHARE_OF_SPAN = 0.1  # the half-life is at most this share of the images one architecture trains on


def half_life_within(span_images: int, half_life: float) -> float:
    """The budget's half-life, at most a tenth of the ``span_images`` one architecture trains on.

    The EMA averages weights, not images. Over a window that is a large share of the span, G's
    weights cross its early swings (at `small` on photos a progan G's mean colour moves by up to
    100 levels per 1,000 images), and the average of those weights is a network that matches no
    G: a 2,000-image half-life in 5,000-image progan phases gave samples with a green mean of 76
    where G and the data sit near 112 (SWD 150.9; capped at 500: 111, SWD 136.0; bench/README.md).
    ProGAN's own EMA (beta 0.999 at batch 16, a half-life of ~11k images) is under 2% of its
    600k-image phases.
    """
    return min(half_life, SHARE_OF_SPAN * span_images)


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
