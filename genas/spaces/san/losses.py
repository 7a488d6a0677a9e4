"""SAN's losses in its two readings, the paired latent MSE, the unpaired image MSE, diversity.

The source names four losses (G: ``L_GD + L_GI``, R: ``L_RZ + L_RX``), computes "the distribution
losses with a Wasserstein distance + gradient penalty" and adds an element-wise MSE between "the
feature tensor the reverser recovers and the sampled Z". Two readings of the Wasserstein terms:

- ``cooperative`` (the literal formulas): ``L_GD = L_RZ = W(R(G(z)), z)`` and ``L_RX = W(R(X), z)``,
  both networks *minimising*. No critic exists in this reading, so W is the sliced Wasserstein-2
  distance between the batches (:func:`sliced_wasserstein`) and there is nothing for a gradient
  penalty to act on.
- ``adversarial`` (the source's "相互对抗", its discriminator, and W paired with a gradient
  penalty, which only constrains a critic that is maximised): R is the critic. Its score is read
  in latent space, as the projection of R's output on the unit diagonal ``u = (1, ..., 1) / sqrt(d)``
  (:func:`critic_score`), and ``W = E[u . R(X)] - E[u . R(G(z))]`` is the WGAN estimate of the
  Wasserstein-1 distance between reals and fakes (Kantorovich-Rubinstein: exact when ``u . R`` is
  the best 1-Lipschitz function, a lower bound otherwise). R *maximises* W under the gradient
  penalty on R that keeps ``u . R`` 1-Lipschitz (:func:`latent_gradient_penalty`, the GAN kit's
  WGAN-GP); G *minimises* it. R's fake term (L_RZ, ``+E[u . R(G(z))]``) and G's term (L_GD,
  ``-E[u . R(G(z))]``) are one quantity with opposite signs, which is how we read "L_RZ 和 L_GD
  是一样的"; R's real term is L_RX.

A critic over *all* directions (the sliced W1 between the batches R(X) and R(G(z)), 128 random
directions redrawn every step, GP on a random direction per sample) learned much worse at the
same budget (mnist5k, 6,000 images: SWD 136.5 against 82.5, textured noise against digit-like
shapes): a direction that changes every step gives R nothing to specialise on.

``L_GI = MSE(G(z), X)`` is implemented as the source writes it: G(z) and X are *unpaired* samples
(the i-th fake against the i-th real of the batch). Its minimiser is a G that outputs the data
mean for every z, so its weight is a search parameter that may be 0; :func:`diversity` measures
what it does. The paired latent MSE ``MSE(R(G(z)), z)`` (:func:`paired_latent_mse`) is what makes
R an inverse of G: both networks minimise it in both readings.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from genas.spaces.gan.losses import gradient_penalty

PROJECTIONS = 128


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = PROJECTIONS) -> torch.Tensor:
    """Sliced W2^2 between the empirical distributions of ``a`` and ``b`` ([N, d] each, same N)."""
    a, b = a.float().flatten(1), b.float().flatten(1)
    directions = F.normalize(torch.randn(a.shape[1], projections, device=a.device), dim=0)
    pa = (a @ directions).sort(dim=0).values
    pb = (b @ directions).sort(dim=0).values
    return (pa - pb).pow(2).mean()


def critic_score(latent: torch.Tensor) -> torch.Tensor:
    """R's critic score: its latent [N, d] projected on the unit diagonal, [N] (float32)."""
    latent = latent.float().flatten(1)
    return latent.sum(dim=1) / latent.shape[1] ** 0.5


def latent_wasserstein(real_latent: torch.Tensor, fake_latent: torch.Tensor) -> torch.Tensor:
    """``W = E[score(R(X))] - E[score(R(G(z)))]``: what R maximises and G minimises."""
    return critic_score(real_latent).mean() - critic_score(fake_latent).mean()


def latent_gradient_penalty(R: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                            fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP on R's score: mean of ``(|grad_x score(R(x))| - 1)^2`` at random interpolates.

    Differentiable in R's parameters (``create_graph``): it is R's to minimise; the fakes are
    detached, so it never reaches G.
    """
    return gradient_penalty(lambda x: critic_score(R(x)), real, fake)


def paired_latent_mse(recovered: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The source's latent MSE: R(G(z)) against the z it came from, element by element."""
    return (recovered.float() - z.float()).pow(2).mean()


def unpaired_mse(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """The source's L_GI: mean squared error between the i-th fake and the i-th (unrelated) real image."""
    return (fake.float() - real.float()).pow(2).mean()


@torch.no_grad()
def diversity(images: torch.Tensor) -> float:
    """Per-pixel standard deviation over the batch, averaged over pixels ([-1, 1] images).

    0 when every sample is the same image (mode collapse); the real data's value is the reference.
    """
    return images.float().std(dim=0).mean().item()
