"""DCGAN's generator and discriminator (Radford, Metz, Chintala 2016), at any power-of-two side >= 8.

G: ``z`` (as a 1x1 map) -> 4x4 transposed conv to ``width * 2**(L-1)`` channels -> ``L - 1``
stride-2 4x4 transposed convs, halving the channels -> a stride-2 4x4 transposed conv to the image,
tanh; batch norm and ReLU after every layer but the last. D mirrors it: stride-2 4x4 convs with
LeakyReLU(0.2), batch norm on every layer but the first, then a 4x4 valid conv to one logit.
``L = log2(resolution) - 2``: at 32x32, G is 4x4 (4w) -> 8x8 (2w) -> 16x16 (w) -> 32x32 (image),
four layers a side, as in the paper's 64x64 network with its first stage removed. Weights start
from N(0, 0.02) and batch-norm scales from N(1, 0.02), as the paper says.
"""
from __future__ import annotations

import torch
from torch import nn

from genas.errors import GenasError


def make_arch(resolution: int, image_channels: int, latent: int, width: int) -> dict:
    return validate_arch({"resolution": int(resolution), "image_channels": int(image_channels),
                          "latent": int(latent), "width": int(width)})


def validate_arch(arch: object) -> dict:
    ok = (isinstance(arch, dict) and set(arch) == {"resolution", "image_channels", "latent", "width"}
          and all(isinstance(arch[k], int) and arch[k] > 0 for k in arch))
    if ok and (arch["resolution"] < 8 or arch["resolution"] & (arch["resolution"] - 1)):
        raise GenasError(f"dcgan needs a power-of-two resolution of at least 8, got {arch['resolution']}; "
                         "resize the dataset with @32 or @64")
    if not ok:
        raise GenasError(f"malformed dcgan architecture {arch!r}; the checkpoint does not match its config")
    return arch


def _stages(resolution: int) -> int:
    return resolution.bit_length() - 3  # 8 -> 1, 16 -> 2, 32 -> 3, 64 -> 4


def init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z [n, latent] -> image [n, C, R, R] in [-1, 1]."""

    def __init__(self, arch: dict) -> None:
        super().__init__()
        self.latent = arch["latent"]
        stages, w = _stages(arch["resolution"]), arch["width"]
        channels = [w * 2 ** (stages - 1 - i) for i in range(stages)]  # 4x4 ... R/2 x R/2
        layers: list[nn.Module] = [nn.ConvTranspose2d(self.latent, channels[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(channels[0]), nn.ReLU(True)]
        for cin, cout in zip(channels, channels[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(channels[-1], arch["image_channels"], 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.latent, 1, 1))


class Discriminator(nn.Module):
    """image [n, C, R, R] -> logit [n, 1]."""

    def __init__(self, arch: dict) -> None:
        super().__init__()
        stages, w = _stages(arch["resolution"]), arch["width"]
        channels = [w * 2 ** i for i in range(stages)]  # R/2 ... 4x4
        layers: list[nn.Module] = [nn.Conv2d(arch["image_channels"], channels[0], 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, True)]
        for cin, cout in zip(channels, channels[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(channels[-1], 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)
