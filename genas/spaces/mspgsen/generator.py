"""The trained MSPG-SEN generator: the EMA G, sampled at its top level (the dataset's resolution)."""
from __future__ import annotations

from genas.spaces.generators import LatentGenerator
from genas.spaces.mspgsen.networks import GNet, validate_arch


class MSPGSENGenerator(LatentGenerator):
    """Samples ``uint8 [n, C, R, R]`` from the EMA generator at the level it is set to (the top one once trained)."""

    space_name = "mspgsen"
    network = GNet
    validate_arch = staticmethod(validate_arch)

    @property
    def resolution(self) -> int:
        return 4 * 2 ** self.net.level
