"""ProGAN (Karras et al. 2018): the fixed progressive-growing schedule, built on dggan's networks."""
from genas.spaces.progan.space import ProGANGenerator, ProGANSpace

__all__ = ["ProGANGenerator", "ProGANSpace"]
