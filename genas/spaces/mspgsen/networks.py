"""MSPG-SEN's networks: the progressive generator G, the discriminator D and AFE's auxiliary D.

The architecture is a JSON-able dict (the trial's ``arch`` user attr and the checkpoint config)::

    {"latent": 64, "image_channels": 1, "resolution": 32,
     "widths": [32, 32, 32, 16],       # channels per level: 4x4, 8x8, 16x16, 32x32
     "kernels": [3, 5, 7],             # GCTDRN branch kernels
     "heads": 3,                       # DEMA heads (kernels 1, 3, 5, ...)
     "gctdrn": true, "dema": true, "contrastive": true, "global_branch": true}

Coarse to fine, ProGAN style with every level built up front: G and D are set to a ``level``
(output resolution ``4 * 2**level``) and a fade ``alpha``; while a level fades in, G's output is
``lerp(upsampled previous-level RGB, new RGB, alpha)`` and D reads the same blend of its two
from-RGB paths. G: z -> PixelNorm -> dense to 4x4 -> per level (upsample), a block (GCTDRN or
ProGAN's two convs, with DEMA when on) -> global enhancement (when on) -> to-RGB (1x1).
D: from-RGB (1x1) -> per level two 3x3 convs and a downsample -> 4x4 head (minibatch stddev,
conv, dense with dropout, score). D returns its per-level features too when asked (APFL's
feature matching, eq. 12).

AFE's auxiliary discriminator reads G's features at the *intermediate* level
``max(level - 1, 0)`` through a per-level 1x1 adapter, appends a minibatch-stddev map (so it
can see how alike the samples of a group are: collapse is a property of a batch, not of one
sample) and scores each sample.
"""
from __future__ import annotations

import torch
from torch import nn

from genas.errors import GenasError
from genas.spaces.layers import downsample2, fade, lrelu, minibatch_stddev, pixel_norm, upsample2
from genas.spaces.mspgsen.blocks import DEMA, GCTDRN, GlobalEnhance, PlainBlock, he_init

ARCH_KEYS = ("latent", "image_channels", "resolution", "widths", "kernels", "heads",
             "gctdrn", "dema", "contrastive", "global_branch")


def levels_for(resolution: int) -> int:
    """How many levels (4x4 up to ``resolution``); the resolution must be a power of two >= 4."""
    if resolution < 4 or resolution & (resolution - 1):
        raise GenasError(f"mspgsen needs a square power-of-two resolution >= 4, got {resolution}; resize the dataset")
    return resolution.bit_length() - 2


def widths_for(resolution: int, width: int) -> list[int]:
    """ProGAN's channel rule: ``width`` up to 16x16, halved per doubling beyond, at least 8."""
    return [max(8, min(width, width * 16 // (4 * 2 ** i))) for i in range(levels_for(resolution))]


def validate_arch(arch: object) -> dict:
    if not isinstance(arch, dict) or set(arch) != set(ARCH_KEYS):
        raise GenasError("the mspgsen checkpoint's arch is malformed (keys must be "
                         f"{', '.join(ARCH_KEYS)}); re-export it from its trial")
    if len(arch["widths"]) != levels_for(int(arch["resolution"])) or not arch["kernels"] or int(arch["heads"]) < 1:
        raise GenasError("the mspgsen checkpoint's arch is inconsistent (widths per level, kernels, heads); "
                         "re-export it from its trial")
    return arch


class GNet(nn.Module):
    def __init__(self, arch: dict) -> None:
        super().__init__()
        self.arch = arch
        widths, heads = arch["widths"], int(arch["heads"])
        self.input = nn.Linear(arch["latent"], 16 * widths[0])
        blocks = []
        for level, cout in enumerate(widths):
            cin = widths[max(level - 1, 0)]
            attention = (DEMA(cin if arch["gctdrn"] else cout, cout, heads, arch["contrastive"])
                         if arch["dema"] else None)
            blocks.append(GCTDRN(cin, cout, tuple(arch["kernels"]), attention) if arch["gctdrn"]
                          else PlainBlock(cin, cout, attention))
        self.blocks = nn.ModuleList(blocks)
        self.enhance = nn.ModuleList(GlobalEnhance(c) for c in widths) if arch["global_branch"] else None
        self.to_rgb = nn.ModuleList(nn.Conv2d(c, arch["image_channels"], 1) for c in widths)
        self.level, self.alpha = len(widths) - 1, 1.0
        he_init(self, tuple(self.to_rgb))

    @property
    def feature_level(self) -> int:
        """Where AFE reads G's intermediate features: the level below the top one."""
        return max(self.level - 1, 0)

    def rgb(self, h: torch.Tensor, level: int) -> torch.Tensor:
        if self.enhance is not None:
            h = self.enhance[level](h)
        return self.to_rgb[level](h)

    def trunk(self, z: torch.Tensor, stop: int) -> list[torch.Tensor]:
        """Features after every block up to level ``stop``."""
        h = self.input(pixel_norm(z)).view(z.shape[0], -1, 4, 4)
        h = pixel_norm(lrelu(h))
        out = []
        for level in range(stop + 1):
            h = self.blocks[level](upsample2(h) if level > 0 else h)
            out.append(h)
        return out

    def forward(self, z: torch.Tensor, features: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Images at the current level; with ``features``, also AFE's intermediate features."""
        hs = self.trunk(z, self.level)
        img = self.rgb(hs[-1], self.level)
        if self.level > 0 and self.alpha < 1.0:
            img = fade(upsample2(self.rgb(hs[-2], self.level - 1)), img, self.alpha)
        return (img, hs[self.feature_level]) if features else img


class DNet(nn.Module):
    def __init__(self, arch: dict, dropout: float) -> None:
        super().__init__()
        widths, c = arch["widths"], arch["image_channels"]
        self.from_rgb = nn.ModuleList(nn.Conv2d(c, w, 1) for w in widths)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(widths[i], widths[i], 3, padding=1), nn.LeakyReLU(0.2),
                          nn.Conv2d(widths[i], widths[i - 1], 3, padding=1), nn.LeakyReLU(0.2))
            for i in range(1, len(widths)))
        w0 = widths[0]
        self.head_conv = nn.Conv2d(w0 + 1, w0, 3, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(16 * w0, w0), nn.LeakyReLU(0.2),
                                  nn.Linear(w0, 1))
        self.level, self.alpha = len(widths) - 1, 1.0
        he_init(self, (self.head[-1],))

    def forward(self, x: torch.Tensor, features: bool = False) -> torch.Tensor | tuple[torch.Tensor, list]:
        """Scores [b]; with ``features``, also the per-level features (for feature matching)."""
        level, feats = self.level, []
        h = lrelu(self.from_rgb[level](x))
        for i in range(level, 0, -1):
            h = downsample2(self.blocks[i - 1](h))
            if i == level and self.alpha < 1.0:
                h = fade(lrelu(self.from_rgb[i - 1](downsample2(x))), h, self.alpha)
            feats.append(h)
        h = lrelu(self.head_conv(minibatch_stddev(h)))
        feats.append(h)
        score = self.head(h).squeeze(1)
        return (score, feats) if features else score


class AuxD(nn.Module):
    """AFE's auxiliary discriminator on G's intermediate features: high score = diverse, low = collapsed."""

    def __init__(self, arch: dict) -> None:
        super().__init__()
        width = min(arch["widths"])
        self.adapt = nn.ModuleList(nn.Conv2d(w, width, 1) for w in arch["widths"])
        self.conv = nn.Conv2d(width + 1, width, 3, padding=1)
        self.score = nn.Linear(width, 1)
        he_init(self, (self.score,))

    def forward(self, features: torch.Tensor, level: int) -> torch.Tensor:
        h = lrelu(self.conv(minibatch_stddev(lrelu(self.adapt[level](features)))))
        return self.score(h.mean(dim=(2, 3))).squeeze(1)


def set_level(level: int, alpha: float, *nets: nn.Module) -> None:
    for net in nets:
        net.level, net.alpha = level, alpha
