"""The trained SAN generator: the EMA of G (the reverser R is only needed for training)."""
from __future__ import annotations

from genas.spaces.generators import LatentGenerator
from genas.spaces.san.networks import GNet, resolution_of, validate_arch


class SANGenerator(LatentGenerator):
    """Samples ``uint8 [n, C, R, R]`` from z ~ N(0, I) through the EMA generator."""

    space_name = "san"
    network = GNet
    validate_arch = staticmethod(validate_arch)

    @property
    def resolution(self) -> int:
        return resolution_of(self.arch)
