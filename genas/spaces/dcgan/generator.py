"""The trained DCGAN generator (sampled in eval mode: batch norm uses its running statistics)."""
from __future__ import annotations

from genas.spaces.dcgan.networks import Generator, validate_arch
from genas.spaces.generators import LatentGenerator


class DCGANGenerator(LatentGenerator):
    space_name = "dcgan"
    network = Generator
    validate_arch = staticmethod(validate_arch)

    @property
    def resolution(self) -> int:
        return self.arch["resolution"]
