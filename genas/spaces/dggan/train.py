"""WGAN-GP training of one phase of a grown GAN (used by both dggan and progan).

Per iteration: ``n_critic`` critic steps (each on ``batch_size`` real images) with
``loss_D = E[D(fake)] - E[D(real)] + gp_weight * GP + drift * E[D(real)^2]`` (the gradient
penalty on real/fake interpolates, ProGAN's drift term), then one generator step with
``loss_G = -E[D(G(z))]``, then the EMA generator update. Images are counted as real images shown
to the critic, ProGAN's "kimg". During the first half of a phase the new parts fade in (alpha
0 -> 1); while a new resolution fades in, the real images are blended the same way
(nearest-upsampled half-resolution -> full resolution), as in ProGAN.

Optimizer state: a fresh Adam(beta1=0, beta2=0.99) for G and for D at the start of every phase,
i.e. every dggan child and every progan resolution. ProGAN resets Adam at each resolution
change; in dggan every child changes the architecture and draws its own learning rate, so the
parent's moment estimates would be stale, and they are not saved.

EMA generator: ``G_ema <- lerp(G_ema, G, 1 - beta)`` after every G step, with
``beta = 0.5 ** (batch_size / ema_half_life)`` (a half-life in images). Across growth, existing
layers keep the parent's EMA weights, new layers start from the same fresh weights as G.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from genas.errors import TrainingDiverged
from genas.spaces.base import Generator, TrialContext
from genas.spaces.dggan.network import Nets, resolution_of
from genas.spaces.layers import downsample2, upsample2


@dataclass
class Hyper:
    lr: float
    n_critic: int
    gp_weight: float
    batch_size: int
    ema_half_life: float
    drift: float = 1e-3


class Progress:
    """Images seen over the whole trial (all phases), progress ticks and the evenly spaced reports."""

    def __init__(self, ctx: TrialContext, total: int, reports: int) -> None:
        self.ctx, self.total, self.done = ctx, total, 0
        self.report_at = [round(total * (i + 1) / reports) for i in range(reports)] if reports > 0 else []

    def step(self, n: int) -> bool:
        """Count ``n`` images; True when a report is due."""
        self.done += n
        self.ctx.advance(min(self.done, self.total), self.total)
        due = False
        while self.report_at and self.done >= self.report_at[0]:
            self.report_at.pop(0)
            due = True
        return due


def real_at(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """The dataset brought down to ``resolution`` by box filtering (ProGAN's lower levels)."""
    factor = images.shape[-1] // resolution
    return F.avg_pool2d(images, factor) if factor > 1 else images


def gradient_penalty(D: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mix = torch.lerp(real, fake, eps).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(mix).float().sum(), mix, create_graph=True)
    return (grad.float().flatten(1).norm(dim=1) - 1).pow(2).mean()


def train_phase(nets: Nets, images: torch.Tensor, hp: Hyper, n_images: int, ctx: TrialContext,
                progress: Progress, wrap: Callable[[Nets], Generator]) -> None:
    """Train ``nets`` on ``n_images`` real images (``images``: the dataset on ctx.device)."""
    device, cuda = ctx.device, ctx.device.type == "cuda"
    fmt = torch.channels_last if cuda else torch.contiguous_format
    G, D, G_ema = nets.G, nets.D, nets.G_ema
    opt_g = torch.optim.Adam(G.parameters(), lr=hp.lr, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=hp.lr, betas=(0.0, 0.99), eps=1e-8)
    beta = 0.5 ** (hp.batch_size / max(hp.ema_half_life, 1.0))
    g_params, ema_params = list(G.parameters()), list(G_ema.parameters())
    real_all = real_at(images, resolution_of(nets.arch))
    fading = any(nets.fades.values())
    fade_images = max(n_images // 2, 1)
    blend_real = nets.fades["g"] == "stage"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    b, latent = hp.batch_size, nets.arch["latent"]
    seen, sums, count = 0, torch.zeros(2, device=device), 0

    def batch(alpha: float) -> torch.Tensor:
        x = real_all[torch.randint(real_all.shape[0], (b,), device=real_all.device)].to(device, non_blocking=True)
        if blend_real and alpha < 1.0:
            x = torch.lerp(upsample2(downsample2(x)), x, alpha)
        return x.contiguous(memory_format=fmt)

    def check(loss_d: float, loss_g: float) -> None:
        if not (math.isfinite(loss_d) and math.isfinite(loss_g)):
            raise TrainingDiverged(
                f"training diverged after {progress.done} images (loss_d={loss_d}, loss_g={loss_g}); "
                f"try a lower learning rate (lr={hp.lr:g}) or a higher gp weight (gp_weight={hp.gp_weight:g})")

    while seen < n_images:
        alpha = min(seen / fade_images, 1.0) if fading else 1.0
        nets.set_alpha(alpha)
        for _ in range(hp.n_critic):
            real = batch(alpha)
            with autocast:
                with torch.no_grad():
                    fake = G(torch.randn(b, latent, device=device))
                d_real, d_fake = D(real).float(), D(fake).float()
                loss_d = (d_fake.mean() - d_real.mean() + hp.drift * d_real.pow(2).mean()
                          + hp.gp_weight * gradient_penalty(D, real, fake.to(real.dtype)))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            seen += b
        with autocast:
            loss_g = -D(G(torch.randn(b, latent, device=device))).float().mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, g_params, 1.0 - beta)
        sums += torch.stack([loss_d.detach(), loss_g.detach()])
        count += 1
        report = progress.step(b * hp.n_critic)
        if report or count % 16 == 0 or seen >= n_images:
            loss_d_mean, loss_g_mean = (sums / count).tolist()
            check(loss_d_mean, loss_g_mean)
            if report:
                nets.set_alpha(min(seen / fade_images, 1.0) if fading else 1.0)
                ctx.report(progress.done, {"loss_d": loss_d_mean, "loss_g": loss_g_mean,
                                           "alpha": nets.G.alpha, **ctx.quick_eval(wrap(nets))})
                sums.zero_()
                count = 0
    nets.set_alpha(1.0)
