"""snn: swarm neural network (particle swarm optimisation inside a reverse-diffusion schedule)."""
from genas.spaces.snn.space import SNNSpace

__all__ = ["SNNSpace"]
