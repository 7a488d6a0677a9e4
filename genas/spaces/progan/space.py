"""The ``progan`` space: the fixed, symmetric ProGAN schedule (Karras et al. 2018) on dggan's networks.

One trial trains the whole schedule: a root at 4x4 (dense + conv3 in G; stddev, conv3, dense in D),
then for every doubling up to the dataset resolution a new stage of two 3x3 convs in G and two in
D, faded in over the first half of its phase. Every phase gets the same share of the images.
Widths follow ProGAN's rule scaled to small images: ``width`` channels up to 16x16, halved at
every doubling beyond (never below 8). TPE tunes lr, width, latent dim, n_critic and gp weight.

Budgets: ``images_per_trial`` is what a dggan lineage of typical depth sees in total
(``LINEAGE_DEPTH[budget] x dggan images_per_trial``: 3 / 5 / 16 trials deep at tiny / small /
full), so that a ProGAN trial and the dggan champion have trained on the same number of images.
"""
from __future__ import annotations

import torch

from genas.errors import GenasError
from genas.spaces.base import Space, TrialContext, register_space
from genas.spaces.dggan.generator import DGGANGenerator
from genas.spaces.dggan.network import Nets, add_stage, finalize, inherit, root_arch
from genas.spaces.dggan.space import BUDGETS as DGGAN_BUDGETS
from genas.spaces.dggan.space import images_on, prepare
from genas.spaces.dggan.train import Hyper, Progress, train_phase

LINEAGE_DEPTH = {"tiny": 3, "small": 5, "full": 16}
_COMMON = ("batch_size", "eval_samples", "quick_eval_samples", "reports", "top_k", "trials", "ema_half_life")
_OWN = {"tiny": {"widths": (8, 16), "latents": (16,)},
        "small": {"widths": (16, 32), "latents": (32, 64)},
        "full": {"widths": (256, 512), "latents": (256, 512)}}
BUDGETS = {name: {"images_per_trial": LINEAGE_DEPTH[name] * DGGAN_BUDGETS[name]["images_per_trial"],
                  **{k: DGGAN_BUDGETS[name][k] for k in _COMMON}, **_OWN[name]}
           for name in DGGAN_BUDGETS}
BUDGETS["small"]["trials"] = 4  # a trial is a whole schedule: 5x a dggan trial


class ProGANGenerator(DGGANGenerator):
    space_name = "progan"


def width_at(resolution: int, width: int) -> int:
    """ProGAN's channel rule: ``width`` up to 16x16, halved per doubling beyond, at least 8."""
    return max(8, min(width, width * 16 // resolution))


def schedule(resolution: int) -> list[int]:
    """The resolutions ProGAN trains at: 4, 8, ..., the dataset's."""
    if resolution < 4 or resolution & (resolution - 1):
        raise GenasError(f"progan needs a power-of-two resolution >= 4, got {resolution}")
    return [4 * 2 ** i for i in range(resolution.bit_length() - 2)]


@register_space
class ProGANSpace(Space):
    """Progressive growing of GANs on a fixed schedule; the baseline dggan must beat."""

    name = "progan"
    generator_cls = ProGANGenerator
    default_sampler = "tpe"
    budgets = BUDGETS

    def suggest(self, trial, ctx: TrialContext) -> dict:
        b = self.budget(ctx.budget)
        return {"lr": trial.suggest_float("lr", 3e-4, 3e-3, log=True),
                "width": trial.suggest_categorical("width", b["widths"]),
                "latent": trial.suggest_categorical("latent", b["latents"]),
                "n_critic": trial.suggest_int("n_critic", 1, 2),
                "gp_weight": trial.suggest_float("gp_weight", 1.0, 10.0, log=True)}

    def train(self, config: dict, ctx: TrialContext) -> ProGANGenerator:
        b = self.budget(ctx.budget)
        torch.manual_seed(ctx.seed)
        hp = Hyper(lr=float(config["lr"]), n_critic=int(config["n_critic"]), gp_weight=float(config["gp_weight"]),
                   batch_size=b["batch_size"], ema_half_life=b["ema_half_life"])
        resolutions = schedule(ctx.dataset.resolution)
        total, width = b["images_per_trial"], int(config["width"])
        per_phase = max(total // len(resolutions), hp.batch_size)
        progress = Progress(ctx, per_phase * len(resolutions), b["reports"])
        images = images_on(ctx)

        def wrap(n: Nets) -> ProGANGenerator:
            return ProGANGenerator(n.arch, n.G_ema)

        arch = root_arch(int(config["latent"]), ctx.dataset.channels, width_at(4, width), 3)
        nets = prepare(Nets(arch), ctx)
        for i, res in enumerate(resolutions):
            if i > 0:  # a new stage, ProGAN style: two 3x3 convs in G on top, two in D at the bottom
                c = width_at(res, width)
                layers = [{"channels": c, "kernel": 3}, {"channels": c, "kernel": 3}]
                arch, fades = add_stage(arch, layers, layers)
                nets = prepare(inherit(nets.tensors(), arch, fades), ctx)
            train_phase(nets, images, hp, per_phase, ctx, progress, wrap)
            nets = finalize(nets)
        ctx.set_attr("arch", arch)
        ctx.save_state({"space": self.name, "arch": arch}, nets.tensors())
        return wrap(nets)
