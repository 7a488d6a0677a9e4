"""DCGAN (Radford et al. 2016): the textbook GAN as the no-search reference, its few hyperparameters tuned."""
from genas.spaces.dcgan.generator import DCGANGenerator
from genas.spaces.dcgan.space import DCGANSpace

__all__ = ["DCGANGenerator", "DCGANSpace"]
