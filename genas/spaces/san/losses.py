"""SAN's losses: a Wasserstein distance between batches of latents, the unpaired image MSE, diversity.

Wasserstein estimator: the source writes "Wasserstein distance + gradient penalty", i.e. a WGAN-GP
critic. Its four losses only ever compare *distributions of latents* (R's outputs against samples of
N(0, I)), for which a critic is not needed: we use the sliced Wasserstein-2 distance, the mean over
random unit directions of the squared 1-D W2 between the two projected batches (sort both, compare
in order). It is a proper distance between the batch distributions, is differentiable almost
everywhere and has no critic to keep 1-Lipschitz, so there is nothing for a gradient penalty to act
on and we add none (a penalty on R itself would change what R learns, which the source does not ask).

``L_GI = MSE(G(z), X)`` is implemented as the source writes it: G(z) and X are *unpaired* samples
(the i-th fake against the i-th real of the batch). Its minimiser is a G that outputs the data
mean for every z, so its weight is a search parameter that may be 0; :func:`diversity` measures
what it does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 128) -> torch.Tensor:
    """Sliced W2^2 between the empirical distributions of ``a`` and ``b`` ([N, d] each, same N)."""
    a, b = a.float().flatten(1), b.float().flatten(1)
    directions = F.normalize(torch.randn(a.shape[1], projections, device=a.device), dim=0)
    pa = (a @ directions).sort(dim=0).values
    pb = (b @ directions).sort(dim=0).values
    return (pa - pb).pow(2).mean()


def unpaired_mse(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The source's L_GI: mean squared error between the i-th fake and the i-th (unrelated) real image."""
    return (fake.float() - real.float()).pow(2).mean()


@torch.no_grad()
def diversity(images: torch.Tensor) -> float:
    """Per-pixel standard deviation over the batch, averaged over pixels ([-1, 1] images).

    0 when every sample is the same image (mode collapse); the real data's value is the reference.
    """
    return images.float().std(dim=0).mean().item()
