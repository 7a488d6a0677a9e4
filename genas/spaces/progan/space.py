"""The ``progan`` space: ProGAN's fixed progressive schedule (``train.py``), its hyperparameters by TPE.

The baseline dggan has to beat: the same networks (``gan/grown.py``), loss, loop and images per
model (the budget's ``IMAGES``, what a dggan lineage is planned to reach), so that the only
difference is the fixed, symmetric schedule against the searched growth. Trial 0 of every study
is the default configuration below; TPE then tunes the learning rate, width, latent size and the
regulariser's weight. The loss is a study option (``--set loss=wgan-gp`` is ProGAN's own, with
gradient penalty and drift; the default ``logistic`` + R1 trained better in every run we made).
"""
from __future__ import annotations

from typing import Any

import torch

from genas.data import Dataset
from genas.spaces.base import Space, TrialContext, register_space
from genas.spaces.gan import GANLoss, Recipe
from genas.spaces.gan.augment import parse_policy
from genas.spaces.gan.budgets import EVAL_SAMPLES, IMAGES, QUICK_EVAL_SAMPLES, SWD_SAMPLES
from genas.spaces.gan.losses import R1_GAMMA, check_loss
from genas.spaces.progan import train as progan_train
from genas.spaces.progan.train import ProGANGenerator, schedule

BUDGETS = {
    "tiny": {"batch_size": 16, "reports": 2, "trials": 3, "widths": (8, 16), "latents": (16,),
             "ema_half_life": 100, "default": {"width": 16, "latent": 16}},
    "small": {"batch_size": 32, "reports": 4, "trials": 4, "widths": (32, 64), "latents": (32, 64),
              "ema_half_life": 2_000, "default": {"width": 64, "latent": 64}},
    "full": {"batch_size": 64, "reports": 8, "trials": 20, "widths": (256, 512), "latents": (256, 512),
             "ema_half_life": 10_000, "default": {"width": 512, "latent": 512}},
}
for _name, _b in BUDGETS.items():
    _b.update(images_per_trial=IMAGES[_name], eval_samples=EVAL_SAMPLES[_name], swd_samples=SWD_SAMPLES[_name],
              quick_eval_samples=QUICK_EVAL_SAMPLES[_name])


@register_space
class ProGANSpace(Space):
    """Progressive growing of GANs on a fixed schedule; the baseline dggan must beat."""

    name = "progan"
    generator_cls = ProGANGenerator
    default_sampler = "tpe"
    budgets = BUDGETS
    options = {"loss": "logistic", "augment": "", "images": 0}

    def check(self, dataset: Dataset, options: dict[str, Any], *, budget: str | None = None,
              objectives: tuple[str, ...] = ()) -> None:
        schedule(dataset.resolution)
        check_loss(options["loss"])
        parse_policy(options["augment"])

    def initial_trials(self, budget: str) -> list[dict]:
        return [{"lr": 2e-3, "r1_gamma": R1_GAMMA, "gp_weight": 10.0, **self.budget(budget)["default"]}]

    def suggest(self, trial, ctx: TrialContext) -> dict:
        b = self.budget(ctx.budget)
        config = {"lr": trial.suggest_float("lr", 5e-4, 5e-3, log=True),
                  "width": trial.suggest_categorical("width", b["widths"]),
                  "latent": trial.suggest_categorical("latent", b["latents"])}
        if ctx.options["loss"] == "wgan-gp":
            config["gp_weight"] = trial.suggest_float("gp_weight", 1.0, 20.0, log=True)
        else:
            config["r1_gamma"] = trial.suggest_float("r1_gamma", 0.1, 100.0, log=True)
        return config

    def train(self, config: dict, ctx: TrialContext) -> ProGANGenerator:
        b = self.budget(ctx.budget)
        torch.manual_seed(ctx.seed)
        loss = GANLoss(kind=ctx.options["loss"], r1_gamma=float(config.get("r1_gamma", 0.0)),
                       gp_weight=float(config.get("gp_weight", 10.0)))
        recipe = Recipe(loss=loss, lr_g=float(config["lr"]), lr_d=float(config["lr"]), batch_size=b["batch_size"],
                        augment=ctx.options["augment"])
        images = ctx.options.get("images") or b["images_per_trial"]
        arch, nets = progan_train.train(config, recipe, b["ema_half_life"], images, b["reports"], ctx)
        ctx.set_attr("arch", arch)
        ctx.save_state({"space": self.name, "arch": arch}, nets.tensors())
        return ProGANGenerator(arch, nets.G_ema)
