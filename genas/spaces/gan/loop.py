"""The adversarial training loop that dcgan, dggan and progan share (mspgsen and san write their own).

Per iteration: ``n_critic`` D steps, each on a fresh batch of real images and a batch of G's
images (both through the same differentiable augmentation, at a probability ADA's controller moves
after every D step when the recipe names a target; D's loss with its regulariser), then
one G step with D frozen, then the EMA update. Images are counted as real images shown to D
(ProGAN's "kimg"). While a new part fades in (``fade``), alpha goes 0 -> 1 over its first images;
while a new resolution fades in, the real images are blended the same way (nearest-upsampled
half resolution -> full resolution), as in ProGAN. With a ``cooldown`` share, both learning rates
fall linearly to zero over that last share of the images (the decay phase of a
warmup-stable-decay schedule: a run trained at a constant rate can be branched anywhere and
cooled down at its end). Every report logs the mean losses and D's
scores since the last one and the quick evaluation of ``snapshot()``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from genas.errors import TrainingDiverged
from genas.spaces.base import Generator, TrialContext
from genas.spaces.gan.augment import AdaptiveProbability, DiffAugment
from genas.spaces.gan.device import autocast, real_batch
from genas.spaces.gan.ema import EMA
from genas.spaces.gan.losses import GANLoss
from genas.spaces.gan.optim import optimizer, set_lr
from genas.spaces.layers import downsample2, upsample2
from genas.spaces.progress import Progress

STATS = ("loss_d", "loss_g", "d_real", "d_fake")


@dataclass(frozen=True)
class Recipe:
    """How a GAN trains, in plain values (a trial's config gives them)."""

    loss: GANLoss = field(default_factory=GANLoss)
    lr_g: float = 2e-3
    lr_d: float = 2e-3
    betas: tuple[float, float] = (0.0, 0.99)
    batch_size: int = 32
    n_critic: int = 1
    augment: str = ""  # DiffAugment policy, e.g. "translation,cutout"
    augment_target: float = 0.0  # 0: augment every image; else ADA's target for E[sign(D(real))] (its own: 0.6)
    augment_speed: int = 5_000  # with a target, the images over which p can go from 0 to 1
    optimizer: str = "adam"
    cooldown: float = 0.0  # the share of the last images over which both learning rates fall to zero


def cooldown_scale(seen: int, n_images: int, share: float) -> float:
    """The learning rates' factor after ``seen`` of ``n_images``: 1, then linearly to 0 over the last
    ``share`` of the images (0: always 1)."""
    if share <= 0:
        return 1.0
    left = max(n_images - seen, 0)
    return min(left / (share * n_images), 1.0)


@dataclass(frozen=True)
class Fade:
    """New parts fading in over the first ``images`` images of a phase (ProGAN)."""

    images: int
    set_alpha: Callable[[float], None]
    blend_real: bool  # a new resolution: blend the real images too

    def alpha(self, seen: int) -> float:
        return min(seen / max(self.images, 1), 1.0)


def train_gan(G: nn.Module, D: nn.Module, ema: EMA, images: torch.Tensor, recipe: Recipe, n_images: int,
              ctx: TrialContext, progress: Progress, snapshot: Callable[[], Generator], *,
              fade: Fade | None = None, ema_images: int = 0) -> None:
    """Train G against D on ``n_images`` real images (``images``: the dataset at G's resolution, on
    ctx.device); ``ema_images``: what the EMA had seen before (for its ramp-up)."""
    device, b, n_critic = ctx.device, recipe.batch_size, recipe.n_critic
    latent = _latent_size(G)
    opt_g = optimizer(G.parameters(), recipe.lr_g, recipe.betas, recipe.optimizer)
    opt_d = optimizer(D.parameters(), recipe.lr_d, recipe.betas, recipe.optimizer)
    augment = DiffAugment(recipe.augment)
    adaptive = None
    if augment and recipe.augment_target:
        adaptive = AdaptiveProbability(augment, recipe.augment_target, recipe.augment_speed)
    critic = (lambda x: D(augment(x))) if augment else D
    loss, amp = recipe.loss, autocast(device)
    seen = d_steps = count = 0
    sums = torch.zeros(len(STATS), device=device)

    def check(means: dict[str, float]) -> None:
        if not all(math.isfinite(v) for v in means.values()):
            raise TrainingDiverged(
                f"training diverged after {progress.done} images ({', '.join(f'{k}={v:.3g}' for k, v in means.items())}); "
                f"try a lower learning rate (lr_g={recipe.lr_g:g}, lr_d={recipe.lr_d:g}) or a stronger regulariser")

    while seen < n_images:
        alpha = fade.alpha(seen) if fade is not None else 1.0
        if fade is not None:
            fade.set_alpha(alpha)
        if recipe.cooldown > 0:
            scale = cooldown_scale(seen, n_images, recipe.cooldown)
            set_lr(opt_d, recipe.lr_d * scale)
            set_lr(opt_g, recipe.lr_g * scale)
        for _ in range(n_critic):
            real = real_batch(images, b, device)
            if fade is not None and fade.blend_real and alpha < 1.0:
                real = torch.lerp(upsample2(downsample2(real)), real, alpha)
            with amp:
                with torch.no_grad():
                    fake = G(torch.randn(b, latent, device=device))
                loss_d, d_real, d_fake = loss.discriminator(critic, real, fake, d_steps)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            if adaptive is not None:
                adaptive.update(d_real)
            d_steps += 1
            seen += b
        D.requires_grad_(False)  # G's step needs gradients through D, not into its weights
        with amp:
            loss_g = loss.generator(critic, G(torch.randn(b, latent, device=device)))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        ema.update(b, ema_images + seen)
        sums += torch.stack([loss_d.detach(), loss_g.detach(), d_real.mean(), d_fake.mean()])
        count += 1
        report = progress.step(b * n_critic)
        if report or count % 16 == 0 or seen >= n_images:
            means = dict(zip(STATS, (sums / count).tolist()))
            check(means)
            if report:
                extra = {"augment_p": augment.p} if adaptive is not None else {}
                ctx.report(progress.done, {**means, "alpha": alpha, **extra, **ctx.quick_eval(snapshot())})
                sums.zero_()
                count = 0
    if fade is not None:
        fade.set_alpha(1.0)


def _latent_size(G: nn.Module) -> int:
    latent = getattr(G, "latent", None)
    if not isinstance(latent, int):
        raise TypeError(f"{type(G).__name__} must have an int attribute 'latent' (its z size)")
    return latent
