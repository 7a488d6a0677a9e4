"""Stage 2a: the parameter autoencoder (source §2.3): 1-D conv encoder and decoder with noise augmentation.

A flattened subset vector v (D numbers) is standardised, padded to a multiple of 2**depth and
read as a one-channel sequence. The encoder is ``depth`` stride-2 Conv1d blocks (InstanceNorm,
LeakyReLU) and a 1x1 conv to ``latent_channels``: Z is [latent_channels, L / 2**depth]. The
decoder mirrors it with stride-2 ConvTranspose1d blocks. Training minimises
``MSE(decode(encode(v + xi_v * N) + xi_z * N), v)`` (the source's two noise augmentations; either
can be switched off by the search).

Choice vs the source: vectors are standardised with the per-coordinate mean of the K checkpoints
and one scale per generated tensor (its coordinates' spread around that mean: a BatchNorm
layer's running variance moves far more between checkpoints than its weight, and one global
scale would leave the weights to the decoder's rounding). Without it a small CPU budget cannot
reconstruct parameters to the 1e-3 precision they differ by. ``xi_v`` is still added in raw
parameter units, as in the source, so 0.001 means what it means there. The consequence, worth
knowing when reading accuracies: a decoder that ignores its latent returns the checkpoints' mean.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def widths(channels: int, depth: int) -> list[int]:
    """Channels per encoder block: ``channels``, doubling up to 4x."""
    return [channels * 2 ** min(i, 2) for i in range(depth)]


def padded_length(dim: int, depth: int) -> int:
    step = 2 ** depth
    return math.ceil(dim / step) * step


class ParamEncoder(nn.Module):
    def __init__(self, depth: int, channels: int, latent_channels: int) -> None:
        super().__init__()
        blocks, c_in = [], 1
        for c in widths(channels, depth):
            blocks += [nn.Conv1d(c_in, c, 3, stride=2, padding=1), nn.InstanceNorm1d(c, affine=True), nn.LeakyReLU(0.2)]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.to_latent = nn.Conv1d(c_in, latent_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, latent_channels, L / 2**depth]
        return self.to_latent(self.blocks(x.unsqueeze(1)))


class ParamDecoder(nn.Module):
    def __init__(self, depth: int, channels: int, latent_channels: int) -> None:
        super().__init__()
        ws = widths(channels, depth)[::-1]
        self.from_latent = nn.Sequential(nn.Conv1d(latent_channels, ws[0], 1), nn.LeakyReLU(0.2))
        blocks = []
        for c_in, c in zip(ws, ws[1:] + [channels]):
            blocks += [nn.ConvTranspose1d(c_in, c, 4, stride=2, padding=1), nn.InstanceNorm1d(c, affine=True),
                       nn.LeakyReLU(0.2)]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv1d(channels, 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [B, latent_channels, l] -> [B, l * 2**depth]
        return self.out(self.blocks(self.from_latent(z))).squeeze(1)


class ParamAutoencoder(nn.Module):
    """Encoder + decoder + the standardisation of the K checkpoint vectors."""

    def __init__(self, dim: int, depth: int, channels: int, latent_channels: int) -> None:
        super().__init__()
        self.dim, self.length = dim, padded_length(dim, depth)
        self.encoder = ParamEncoder(depth, channels, latent_channels)
        self.decoder = ParamDecoder(depth, channels, latent_channels)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def fit_normaliser(self, vectors: torch.Tensor, sizes: list[int] | None = None) -> None:
        """Mean per coordinate; one scale per segment of ``sizes`` coordinates (one tensor each; all: one)."""
        self.mean.copy_(vectors.mean(0))
        deviation, at = vectors - self.mean, 0
        for size in sizes or [self.dim]:
            self.scale[at:at + size] = deviation[:, at:at + size].std().clamp_min(1e-8)
            at += size

    def normalise(self, v: torch.Tensor) -> torch.Tensor:
        x = (v - self.mean) / self.scale
        return nn.functional.pad(x, (0, self.length - self.dim))

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.normalise(v))


def decode_to_parameters(decoder: ParamDecoder, z: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Latents -> raw parameter vectors [B, D] (the inverse of ``normalise``)."""
    return decoder(z)[:, : mean.shape[0]] * scale + mean


def train_autoencoder(ae: ParamAutoencoder, vectors: torch.Tensor, steps: int, batch_size: int, lr: float,
                      xi_v: float, xi_z: float, on_step, sizes: list[int] | None = None) -> None:  # noqa: ANN001
    """Fit ``ae`` to reconstruct ``vectors`` [K, D] (on ae's device) under the two noise augmentations.

    ``on_step(step, loss)`` is called after every step; ``sizes``: the generated tensors' sizes (their scales).
    """
    ae.fit_normaliser(vectors, sizes)
    opt = torch.optim.AdamW(ae.parameters(), lr=lr, weight_decay=2e-6)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    target_all = ae.normalise(vectors)
    ae.train()
    for step in range(steps):
        idx = torch.randint(vectors.shape[0], (batch_size,), device=vectors.device)
        v = vectors[idx]
        z = ae.encoder(ae.normalise(v + xi_v * torch.randn_like(v)))
        recon = ae.decoder(z + xi_z * torch.randn_like(z))
        loss = nn.functional.mse_loss(recon[:, : ae.dim], target_all[idx, : ae.dim])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        on_step(step, loss.detach())
    ae.eval()
