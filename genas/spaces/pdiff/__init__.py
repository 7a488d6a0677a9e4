"""pdiff: neural network parameter diffusion (Wang et al. 2024): a latent DDPM that generates classifier parameters."""
from genas.spaces.pdiff.space import PDiffSpace  # noqa: F401  (runs @register_space)
