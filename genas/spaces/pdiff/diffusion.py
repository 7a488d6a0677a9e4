"""Stage 2b: a DDPM on the autoencoder's latents (source §2.4): linear betas, epsilon prediction, EMA.

The denoiser is a 1-D conv net (parameters have no 2-D layout, as the source notes): a conv in,
``blocks`` residual blocks (GroupNorm, SiLU, Conv1d k=3) each adding a projection of the
sinusoidal timestep embedding, and a conv out. Latents are scaled to unit standard deviation
before diffusion (the scale is kept for sampling). Sampling is DDPM ancestral sampling with
sigma_t^2 = beta_t, from a seeded CPU generator so that the same seed gives the same latents.
The EMA decay warms up as min(0.999, (1 + step) / (10 + step)), so short CPU runs still get an
EMA that has moved away from the initialisation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Schedule:
    timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2

    def betas(self) -> torch.Tensor:
        return torch.linspace(self.beta_start, self.beta_end, self.timesteps, dtype=torch.float64)

    def alpha_bars(self) -> torch.Tensor:
        return torch.cumprod(1 - self.betas(), 0)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock1d(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        groups = math.gcd(8, width)
        self.norm1, self.conv1 = nn.GroupNorm(groups, width), nn.Conv1d(width, width, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(groups, width), nn.Conv1d(width, width, 3, padding=1)
        self.time = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x))) + self.time(emb)[:, :, None]
        return x + self.conv2(nn.functional.silu(self.norm2(h)))


class Denoiser1d(nn.Module):
    """epsilon_theta(z_t, t) for latents [B, C, l]."""

    def __init__(self, latent_channels: int, width: int, blocks: int) -> None:
        super().__init__()
        self.width = width
        self.embed = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Conv1d(latent_channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(ResBlock1d(width) for _ in range(blocks))
        self.out = nn.Sequential(nn.GroupNorm(math.gcd(8, width), width), nn.SiLU(),
                                 nn.Conv1d(width, latent_channels, 3, padding=1))

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = nn.functional.silu(self.embed(timestep_embedding(t, self.width)))
        h = self.inp(z)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)


def train_ddpm(denoiser: Denoiser1d, ema: Denoiser1d, latents: torch.Tensor, schedule: Schedule, steps: int,
               batch_size: int, lr: float, on_step) -> None:  # noqa: ANN001 - on_step(step, loss) -> None
    """Fit ``denoiser`` to predict the noise added to ``latents`` (already unit-scaled); update ``ema``."""
    device = latents.device
    alpha_bars = schedule.alpha_bars().float().to(device)
    opt = torch.optim.AdamW(denoiser.parameters(), lr=lr, weight_decay=0.0)
    params, ema_params = list(denoiser.parameters()), list(ema.parameters())
    denoiser.train()
    for step in range(steps):
        z0 = latents[torch.randint(latents.shape[0], (batch_size,), device=device)]
        t = torch.randint(schedule.timesteps, (batch_size,), device=device)
        eps = torch.randn_like(z0)
        ab = alpha_bars[t][:, None, None]
        loss = nn.functional.mse_loss(denoiser(ab.sqrt() * z0 + (1 - ab).sqrt() * eps, t), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            decay = min(0.999, (1 + step) / (10 + step))
            torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        on_step(step, loss.detach())


@torch.no_grad()
def sample_latents(denoiser: Denoiser1d, schedule: Schedule, shape: tuple[int, int],
                   gens: list[torch.Generator]) -> torch.Tensor:
    """Ancestral DDPM sampling of one latent [*shape] (unit-scaled) per generator, on the denoiser's device.

    Each latent draws all its noise from its own generator, so latent i is the same whichever
    batch it is sampled in.
    """
    n = len(gens)
    device = next(denoiser.parameters()).device
    betas = schedule.betas()
    alphas, alpha_bars = 1 - betas, schedule.alpha_bars()
    coef = (betas / (1 - alpha_bars).sqrt()).tolist()
    inv_sqrt_alpha, sigma = (1 / alphas.sqrt()).tolist(), betas.sqrt().tolist()
    x = _noise(gens, shape).to(device)
    for i in reversed(range(schedule.timesteps)):
        t = torch.full((n,), i, device=device, dtype=torch.long)
        x = inv_sqrt_alpha[i] * (x - coef[i] * denoiser(x, t))
        if i > 0:
            x = x + sigma[i] * _noise(gens, shape).to(device)
    return x


def _noise(gens: list[torch.Generator], shape: tuple[int, int]) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g) for g in gens])
