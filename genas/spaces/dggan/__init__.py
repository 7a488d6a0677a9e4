"""Dynamically Grown GAN (Liu et al., AAAI 2021): architecture search by growth actions.

``network.py`` the growable G and D and the actions, ``train.py`` the WGAN-GP loop,
``generator.py`` the trained generator, ``space.py`` the Space.
"""
from genas.spaces.dggan.generator import DGGANGenerator
from genas.spaces.dggan.space import DGGANSpace

__all__ = ["DGGANGenerator", "DGGANSpace"]
