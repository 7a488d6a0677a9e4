"""The trained DGGAN (or ProGAN) generator: the EMA G of the final architecture."""
from __future__ import annotations

from genas.spaces.dggan.network import GNet, resolution_of, validate_arch
from genas.spaces.generators import LatentGenerator


class DGGANGenerator(LatentGenerator):
    """Samples ``uint8 [n, C, R, R]`` at the arch's own resolution (may be below the dataset's)."""

    space_name = "dggan"
    network = GNet
    validate_arch = staticmethod(validate_arch)

    @property
    def resolution(self) -> int:
        return resolution_of(self.arch)
