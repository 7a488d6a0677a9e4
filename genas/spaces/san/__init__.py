"""SAN: the self-adversarial network (generator G and reverser R sharing their conv kernels)."""
from genas.spaces.san.generator import SANGenerator
from genas.spaces.san.space import SANSpace

__all__ = ["SANGenerator", "SANSpace"]
