"""The trained SAN generator: the EMA of G (the reverser R is only needed for training)."""
from __future__ import annotations

import torch

from genas.data import to_uint8
from genas.errors import GenasError
from genas.spaces.san.networks import GNet, resolution_of, validate_arch

SAMPLE_BATCH = 256


class SANGenerator:
    """Samples ``uint8 [n, C, R, R]`` from z ~ N(0, I) through the EMA generator."""

    space_name = "san"

    def __init__(self, arch: dict, net: GNet) -> None:
        self.arch, self.net = arch, net

    @property
    def resolution(self) -> int:
        return resolution_of(self.arch)

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.seed()))
        device = next(self.net.parameters()).device
        out = []
        for start in range(0, n, SAMPLE_BATCH):
            z = torch.randn(min(SAMPLE_BATCH, n - start), self.arch["latent"], generator=gen)
            out.append(to_uint8(self.net(z.to(device)).float().cpu()))
        if not out:
            return torch.zeros(0, self.arch["image_channels"], self.resolution, self.resolution, dtype=torch.uint8)
        return torch.cat(out)

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.net.state_dict().items()}
        return {"space": self.space_name, "arch": self.arch}, tensors

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> "SANGenerator":
        if not isinstance(config, dict) or config.get("space") != cls.space_name:
            found = config.get("space") if isinstance(config, dict) else None
            raise GenasError(f"checkpoint is for space {found!r}, not {cls.space_name!r}; "
                             "load it with genas.load or generator_from_state")
        arch = validate_arch(config.get("arch"))
        net = GNet(arch)
        expected = net.state_dict()
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        wrong = sorted(k for k in set(expected) & set(tensors) if tuple(tensors[k].shape) != tuple(expected[k].shape))
        if missing or extra or wrong:
            raise GenasError(f"the san checkpoint does not match its config (missing tensors {missing}, "
                             f"unexpected tensors {extra}, wrong shapes {wrong}); re-export it from its trial")
        net.load_state_dict({k: v.float() for k, v in tensors.items()})
        return cls(arch, net.eval().requires_grad_(False))
