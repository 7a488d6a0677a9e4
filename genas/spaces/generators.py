"""What the families' generators share: the space check on a checkpoint, and the z -> image generator.

:class:`LatentGenerator` is every GAN family's trained generator (dggan, progan, mspgsen, san):
one network from ``z ~ N(0, I)`` [n, latent] to images, saved as its arch dict + state dict.
A family subclasses it with its ``space_name``, ``network``, ``validate_arch`` and :attr:`resolution`.
"""
from __future__ import annotations

from typing import Callable, ClassVar

import torch
from torch import nn

from genas.data import to_uint8
from genas.errors import GenasError

SAMPLE_BATCH = 256


def check_space(config: object, space_name: str) -> dict:
    """``config`` as a dict written by ``space_name``; GenasError otherwise."""
    if not isinstance(config, dict) or config.get("space") != space_name:
        found = config.get("space") if isinstance(config, dict) else None
        raise GenasError(f"checkpoint is for space {found!r}, not {space_name!r}; "
                         "load it with genas.load or generator_from_state")
    return config


def load_matching(net: nn.Module, tensors: dict[str, torch.Tensor], what: str) -> nn.Module:
    """Load ``tensors`` into ``net`` when names and shapes match exactly; GenasError naming the differences."""
    expected = net.state_dict()
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(tensors[k].shape) != tuple(expected[k].shape))
    if missing or extra or wrong:
        raise GenasError(f"the {what} checkpoint does not match its config (missing tensors {missing}, "
                         f"unexpected tensors {extra}, wrong shapes {wrong}); re-export it from its trial")
    net.load_state_dict({k: v.float() for k, v in tensors.items()})
    return net


class LatentGenerator:
    """Samples ``uint8 [n, C, R, R]`` from ``z ~ N(0, I)`` through ``net`` (a family's EMA generator)."""

    space_name: ClassVar[str]
    #: the family's generator network class, built from an arch dict
    network: ClassVar[Callable[[dict], nn.Module]]
    #: the family's arch check: returns the arch, raises GenasError when it is malformed
    validate_arch: ClassVar[Callable[[object], dict]]

    def __init__(self, arch: dict, net: nn.Module) -> None:
        self.arch, self.net = arch, net

    @classmethod
    def build(cls, arch: object) -> tuple[dict, nn.Module]:
        """Validate a saved ``arch`` and build its (untrained) network."""
        arch = cls.validate_arch(arch)
        return arch, cls.network(arch)

    @property
    def resolution(self) -> int:
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.seed()))
        device = next(self.net.parameters()).device
        was_training = self.net.training
        self.net.eval()  # sampling never uses dropout, whatever state training left the net in
        out = []
        for start in range(0, n, SAMPLE_BATCH):
            z = torch.randn(min(SAMPLE_BATCH, n - start), self.arch["latent"], generator=gen)
            out.append(to_uint8(self.net(z.to(device)).float().cpu()))
        self.net.train(was_training)
        if not out:
            return torch.zeros(0, self.arch["image_channels"], self.resolution, self.resolution, dtype=torch.uint8)
        return torch.cat(out)

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.net.state_dict().items()}
        return {"space": self.space_name, "arch": self.arch}, tensors

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> "LatentGenerator":
        arch, net = cls.build(check_space(config, cls.space_name).get("arch"))
        return cls(arch, load_matching(net, tensors, cls.space_name).eval().requires_grad_(False))
