"""Dynamically Grown GAN (Liu et al., AAAI 2021): architecture search by growth actions, as a beam.

``actions.py`` the growth actions and which a lineage may take, ``train.py`` one candidate,
``space.py`` the Space and its beam settings; the networks are ``gan/grown.py``.
"""
from genas.spaces.dggan.space import DGGANSpace
from genas.spaces.dggan.train import DGGANGenerator

__all__ = ["DGGANGenerator", "DGGANSpace"]
