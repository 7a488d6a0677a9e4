"""The ``dcgan`` space: the textbook DCGAN, the no-search reference every champion is compared with.

Trial 0 of every study is the paper's configuration (Radford et al. 2016: Adam lr 0.0002, beta1
0.5, batch 128, BCE; width 64 at ``small``); TPE then tunes the few hyperparameters the paper
fixes: learning rate, beta1, batch size, width and the loss. A trial trains on the budget's
``IMAGES`` (the images behind one model of any GAN family at that budget), or on
``--set images=N``, which the bench uses to train the baseline on exactly a champion's images.
"""
from __future__ import annotations

from typing import Any

import torch

from genas.data import Dataset
from genas.errors import GenasError
from genas.spaces.base import Space, TrialContext, register_space
from genas.spaces.dcgan import train as dcgan_train
from genas.spaces.dcgan.generator import DCGANGenerator
from genas.spaces.dcgan.networks import make_arch
from genas.spaces.gan.budgets import EVAL_SAMPLES, IMAGES, QUICK_EVAL_SAMPLES, SWD_SAMPLES

LATENT = 100  # the paper's z
PAPER = {"lr": 2e-4, "beta1": 0.5, "batch_size": 128, "loss": "logistic"}

BUDGETS = {
    "tiny": {"images_per_trial": IMAGES["tiny"], "trials": 3, "reports": 2, "widths": (8, 16), "width": 16,
             "batch_sizes": (16, 32, 128)},
    "small": {"images_per_trial": IMAGES["small"], "trials": 8, "reports": 4, "widths": (32, 64, 128), "width": 64,
              "batch_sizes": (32, 64, 128)},
    "full": {"images_per_trial": IMAGES["full"], "trials": 30, "reports": 8, "widths": (64, 128, 256), "width": 128,
             "batch_sizes": (64, 128, 256)},
}
for _name, _b in BUDGETS.items():
    _b.update(eval_samples=EVAL_SAMPLES[_name], swd_samples=SWD_SAMPLES[_name],
              quick_eval_samples=QUICK_EVAL_SAMPLES[_name])


@register_space
class DCGANSpace(Space):
    """Deep convolutional GAN (Radford, Metz, Chintala 2016): the paper's recipe first, then TPE."""

    name = "dcgan"
    generator_cls = DCGANGenerator
    default_sampler = "tpe"
    default_pruner = "median"
    budgets = BUDGETS
    options = {"images": 0}  # 0: the budget's images per trial

    def initial_trials(self, budget: str) -> list[dict]:
        """The paper's configuration runs first in every study: the reference as published."""
        return [{**PAPER, "width": self.budget(budget)["width"]}]

    def check(self, dataset: Dataset, options: dict[str, Any], *, budget: str | None = None,
              objectives: tuple[str, ...] = ()) -> None:
        make_arch(dataset.resolution, dataset.channels, LATENT, 8)  # raises for a side DCGAN cannot build
        if options["images"] < 0:
            raise GenasError(f"option images={options['images']} must be >= 0 (0: the budget's)")

    def images(self, ctx: TrialContext) -> int:
        return ctx.options.get("images") or self.budget(ctx.budget)["images_per_trial"]

    def suggest(self, trial, ctx: TrialContext) -> dict:
        b = self.budget(ctx.budget)
        return {"lr": trial.suggest_float("lr", 5e-5, 2e-3, log=True),
                "beta1": trial.suggest_float("beta1", 0.0, 0.9),
                "batch_size": trial.suggest_categorical("batch_size", b["batch_sizes"]),
                "width": trial.suggest_categorical("width", b["widths"]),
                "loss": trial.suggest_categorical("loss", ("logistic", "hinge"))}

    def train(self, config: dict, ctx: TrialContext) -> DCGANGenerator:
        torch.manual_seed(ctx.seed)
        arch = make_arch(ctx.dataset.resolution, ctx.dataset.channels, LATENT, int(config["width"]))
        ctx.set_attr("arch", arch)
        return dcgan_train.train(arch, config, self.images(ctx), self.budget(ctx.budget)["reports"], ctx)
