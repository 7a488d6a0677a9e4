"""What every GAN trial shares, and nothing family-specific.

- ``losses.py``: logistic (non-saturating; DCGAN's BCE), hinge and WGAN-GP, with R1, GP and drift;
- ``ema.py``: the EMA generator, a half-life in images with an optional ramp-up, kept within the
  images one architecture trains on (``half_life_within``);
- ``optim.py``: the optimisers by name;
- ``augment.py``: differentiable augmentation (translation, cutout, colour) for small datasets, at a
  probability ADA's controller can adapt;
- ``device.py``: device placement, channels_last, bf16 autocast, real batches and lower levels;
- ``loop.py``: the adversarial loop dcgan, dggan and progan train with (``Recipe``, ``train_gan``);
- ``grown.py``: the progressively grown G and D that dggan and progan grow.

Progress and reports are ``genas.spaces.progress.Progress`` (every family uses it).
"""
from genas.spaces.gan.augment import AdaptiveProbability, DiffAugment
from genas.spaces.gan.device import autocast, images_on, prepare, real_at, real_batch
from genas.spaces.gan.ema import EMA, half_life_within
from genas.spaces.gan.loop import Fade, Recipe, train_gan
from genas.spaces.gan.losses import LOSSES, GANLoss
from genas.spaces.gan.optim import optimizer
from genas.spaces.progress import Progress

__all__ = ["AdaptiveProbability", "DiffAugment", "EMA", "Fade", "GANLoss", "LOSSES", "Progress", "Recipe", "autocast",
           "half_life_within", "images_on", "optimizer", "prepare", "real_at", "real_batch", "train_gan"]
