"""The adversarial losses every GAN family picks from, and their regularisers.

- ``logistic``: the original GAN game with the non-saturating generator loss (Goodfellow et al.
  2014): ``L_D = softplus(D(fake)) + softplus(-D(real))``, ``L_G = softplus(-D(fake))``. This is
  DCGAN's binary cross-entropy on logits, and StyleGAN2's loss; pair it with R1.
- ``hinge``: ``L_D = relu(1 - D(real)) + relu(1 + D(fake))``, ``L_G = -D(fake)`` (SAGAN, BigGAN).
- ``wgan-gp``: ``L_D = D(fake) - D(real) + gp * GP + drift * D(real)^2``, ``L_G = -D(fake)``
  (Gulrajani et al. 2017 with ProGAN's drift term).

R1 (Mescheder et al. 2018) penalises ``|grad_x D(x)|^2`` on real images, weighted ``gamma / 2``;
it is computed lazily every ``r1_every`` D steps and scaled by ``r1_every`` (StyleGAN2), so its
average weight is unchanged. Scores are float32 whatever the autocast dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from genas.errors import GenasError

LOSSES = ("logistic", "hinge", "wgan-gp")
# R1's default weight for the grown GANs: Mescheder et al.'s and StyleGAN's 10. At 1, D overpowers G
# once a dggan lineage grows to 32x32 and G collapses onto one or two digits (a 16x16 parent spread
# over 9.1 digits, its 32x32 child over 1.4; at 10: 5.8, SWD 96.6 -> 40.4; bench/README.md).
R1_GAMMA = 10.0

Critic = Callable[[torch.Tensor], torch.Tensor]


def check_loss(kind: str) -> str:
    if kind not in LOSSES:
        raise GenasError(f"unknown GAN loss {kind!r}; use one of {', '.join(LOSSES)}")
    return kind


def d_loss(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss from its scores on real and fake images (no regulariser)."""
    d_real, d_fake = d_real.float(), d_fake.float()
    if kind == "logistic":
        return F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
    if kind == "hinge":
        return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
    if kind == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    raise GenasError(f"unknown GAN loss {kind!r}; use one of {', '.join(LOSSES)}")


def g_loss(kind: str, d_fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss from the discriminator's scores on its images."""
    d_fake = d_fake.float()
    if kind == "logistic":
        return F.softplus(-d_fake).mean()
    if kind in ("hinge", "wgan-gp"):
        return -d_fake.mean()
    raise GenasError(f"unknown GAN loss {kind!r}; use one of {', '.join(LOSSES)}")


def r1_penalty(d_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``|grad_real sum(D(real))|^2``; ``real`` must require grad."""
    (grad,) = torch.autograd.grad(d_real.float().sum(), real, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: mean of ``(|grad D(x_hat)| - 1)^2`` on random interpolates of real and fake."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mix = torch.lerp(real.detach(), fake.detach().to(real.dtype), eps).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mix).float().sum(), mix, create_graph=True)
    return (grad.float().flatten(1).norm(dim=1) - 1).pow(2).mean()


@dataclass(frozen=True)
class GANLoss:
    """One loss with its regulariser, as a trial's config names it."""

    kind: str = "logistic"
    r1_gamma: float = 0.0  # logistic / hinge
    r1_every: int = 4
    gp_weight: float = 10.0  # wgan-gp
    drift: float = 1e-3  # wgan-gp

    def __post_init__(self) -> None:
        check_loss(self.kind)

    def discriminator(self, critic: Critic, real: torch.Tensor, fake: torch.Tensor,
                      step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, D(real), D(fake)) for D step number ``step``; ``fake`` is detached here."""
        fake = fake.detach()
        r1 = self.kind != "wgan-gp" and self.r1_gamma > 0 and step % self.r1_every == 0
        if r1:
            real = real.detach().requires_grad_(True)
        d_real, d_fake = critic(real).float(), critic(fake).float()
        loss = d_loss(self.kind, d_real, d_fake)
        if r1:
            loss = loss + 0.5 * self.r1_gamma * self.r1_every * r1_penalty(d_real, real)
        if self.kind == "wgan-gp":
            loss = loss + self.gp_weight * gradient_penalty(critic, real, fake)
            if self.drift:
                loss = loss + self.drift * d_real.pow(2).mean()
        return loss, d_real.detach(), d_fake.detach()

    def generator(self, critic: Critic, fake: torch.Tensor) -> torch.Tensor:
        return g_loss(self.kind, critic(fake))
