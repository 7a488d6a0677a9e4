"""MSPG-SEN (Sun, Song, Chi 2024): two-flow feedback multi-scale progressive GAN, searched with TPE."""
from genas.spaces.mspgsen.generator import MSPGSENGenerator
from genas.spaces.mspgsen.space import MSPGSENSpace

__all__ = ["MSPGSENGenerator", "MSPGSENSpace"]
