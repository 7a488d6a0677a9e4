"""ProGAN (Karras et al. 2018): the fixed progressive-growing schedule on the shared grown networks."""
from genas.spaces.progan.space import ProGANSpace
from genas.spaces.progan.train import ProGANGenerator

__all__ = ["ProGANGenerator", "ProGANSpace"]
