"""DCGAN training: the shared adversarial loop with the paper's settings unless the trial says otherwise.

The paper's recipe (Radford et al. 2016, section 4): Adam, learning rate 0.0002, beta1 0.5, batch
128, binary cross-entropy (the ``logistic`` loss with the non-saturating G loss), no weight
averaging, no augmentation, no regulariser. Images are counted as real images shown to D.
"""
from __future__ import annotations

from genas.spaces.base import TrialContext
from genas.spaces.dcgan.generator import DCGANGenerator
from genas.spaces.dcgan.networks import Discriminator, Generator
from genas.spaces.gan import EMA, GANLoss, Recipe, images_on, prepare, train_gan
from genas.spaces.progress import Progress


def recipe_of(config: dict) -> Recipe:
    return Recipe(loss=GANLoss(kind=str(config["loss"])), lr_g=float(config["lr"]), lr_d=float(config["lr"]),
                  betas=(float(config["beta1"]), 0.999), batch_size=int(config["batch_size"]))


def train(arch: dict, config: dict, n_images: int, reports: int, ctx: TrialContext) -> DCGANGenerator:
    G, D = prepare(Generator(arch), ctx.device), prepare(Discriminator(arch), ctx.device)
    ema = EMA(G, half_life=0.0)  # the textbook samples from G itself
    progress = Progress(ctx, n_images, reports)
    train_gan(G, D, ema, images_on(ctx), recipe_of(config), n_images, ctx, progress,
              snapshot=lambda: DCGANGenerator(arch, ema.model))
    return DCGANGenerator(arch, ema.model)
