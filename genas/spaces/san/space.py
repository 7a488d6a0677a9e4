"""The ``san`` space: TPE over the self-adversarial network's hyperparameters and module switches.

The study option ``reading`` says which reading of the source's losses trains (losses.py):
``adversarial`` (the default: R is a WGAN-GP critic in latent space, G works against it),
``cooperative`` (the literal formulas: G and R both minimise Wasserstein distances to z), or
``search`` (TPE picks one per trial, as the searched parameter ``reading``).

Searched: learning rate, L2 weight (Adam's coupled weight decay), the kernel-averaging weight
``lam`` in [0.05, 0.75] (at 0.9 R's kernels are almost G's and, adversarially, R failed as a critic:
W below 0 after 9,000 images), the weights of the unpaired image MSE ``MSE(G(z), X)`` (``mse_weight``) and of
the paired latent MSE ``MSE(R(G(z)), z)`` (``latent_mse_weight``), the gradient penalty's weight
(adversarial), width, latent size, and each of the source's modules on/off (channel attention,
RPA with its ratio r, ADO with its threshold), so a study is also an ablation. Both MSE weights are
categoricals over {0, 0.1, 1}: the question a study has to answer is whether a term helps *at
all*, which needs exactly 0 among the choices (a log-uniform float never reaches 0, and a float
plus an on/off bool would spend TPE's few trials on a continuous weight whose useful range is
unknown); 0.1 and 1 bracket it against the other terms, which are O(0.1-1) on these latents.

Trial 0 of every study is the source's configuration (:meth:`SANSpace.initial_trials`): every
module on, each of its losses at weight 1 (it sums them unweighted: ``L_GD + L_GI``,
``L_RZ + L_RX``; for the latent MSE it gives no weight, and 1 is our reading of the same
convention). What the source leaves open takes :data:`SOURCE_OPEN`, genas's choices, not the
source's: lam 0.5 (it says only "between 0 and 1"), the gradient penalty's weight 10 (Gulrajani
et al.), RPA's r = 0.5 (it says r < 1), ADO's threshold 0.1, the learning rate and L2 weight.

Budgets (images are real images shown to R; see networks.py for the module count per resolution):

- ``tiny``: tests, a few hundred images at width 8/16, seconds on a CPU.
- ``small``: the README demo on a 2-core CPU (mnist5k 32x32: 4 modules), width 16, latent 32/64,
  12,000 images at batch 16 (750 steps: at 6,000 images and batch 32 the adversarial SAN made
  digit-like glyphs, not yet strokes; halving the batch for twice the steps gave strokes).
- ``full``: the source's scale on a GPU: widths up to 512, latent 512, six modules at 128x128.
"""
from __future__ import annotations

import torch

from typing import Any

from genas.data import Dataset
from genas.errors import GenasError
from genas.spaces.base import Space, TrialContext, register_space
from genas.spaces.gan import images_on, prepare
from genas.spaces.progress import Progress
from genas.spaces.san.generator import SANGenerator
from genas.spaces.san.losses import diversity
from genas.spaces.san.networks import make_arch
from genas.spaces.san.train import READINGS, Hyper, Nets, train

MSE_WEIGHTS = (0.0, 0.1, 1.0)
READING_OPTIONS = (*READINGS, "search")
#: the source's configuration: every module on, its losses summed with weight 1
SOURCE = {"attention": True, "rpa": True, "ado": True, "mse_weight": 1.0, "latent_mse_weight": 1.0}
#: what the source leaves open (genas's choices; see the module docstring)
SOURCE_OPEN = {"lam": 0.5, "gp_weight": 10.0, "rpa_ratio": 0.5, "ado_threshold": 0.1, "lr": 1e-3,
               "weight_decay": 1e-5, "reading": "adversarial"}

BUDGETS = {
    "tiny": {"images_per_trial": 256, "batch_size": 16, "eval_samples": 128, "quick_eval_samples": 64,
             "reports": 2, "top_k": 2, "trials": 4, "widths": (8, 16), "latents": (16,), "ema_half_life": 100},
    "small": {"images_per_trial": 12_000, "batch_size": 16, "eval_samples": 1000, "quick_eval_samples": 256,
              "reports": 4, "top_k": 3, "trials": 8, "widths": (16,), "latents": (32, 64),
              "ema_half_life": 1_000},
    "full": {"images_per_trial": 800_000, "batch_size": 64, "eval_samples": 10_000, "swd_samples": 16_384,
             "quick_eval_samples": 2_000,
             "reports": 8, "top_k": 5, "trials": 100, "widths": (256, 512), "latents": (256, 512),
             "ema_half_life": 10_000},
}


@register_space
class SANSpace(Space):
    """Self-adversarial network: generator G and reverser R with shared conv kernels (TPE)."""

    name = "san"
    generator_cls = SANGenerator
    default_sampler = "tpe"
    default_pruner = "median"
    budgets = BUDGETS
    options = {"reading": "adversarial"}  # adversarial | cooperative | search

    def check(self, dataset: Dataset, options: dict[str, Any], *, budget: str | None = None,
              objectives: tuple[str, ...] = ()) -> None:
        if options["reading"] not in READING_OPTIONS:
            raise GenasError(f"option reading={options['reading']} is not one of {', '.join(READING_OPTIONS)}; "
                             "e.g. --set reading=adversarial")

    def initial_trials(self, budget: str) -> list[dict]:
        """The source's configuration first, at the budget's largest width and latent."""
        b = self.budget(budget)
        return [{**SOURCE, **SOURCE_OPEN, "width": max(b["widths"]), "latent": max(b["latents"])}]

    def suggest(self, trial, ctx: TrialContext) -> dict:
        b = self.budget(ctx.budget)
        reading = ctx.options.get("reading", self.options["reading"])
        if reading == "search":
            reading = trial.suggest_categorical("reading", READINGS)
        config = {"reading": reading,
                  "lr": trial.suggest_float("lr", 3e-4, 3e-3, log=True),
                  "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True),
                  "lam": trial.suggest_float("lam", 0.05, 0.75),
                  "mse_weight": trial.suggest_categorical("mse_weight", MSE_WEIGHTS),
                  "latent_mse_weight": trial.suggest_categorical("latent_mse_weight", MSE_WEIGHTS),
                  "width": trial.suggest_categorical("width", b["widths"]),
                  "latent": trial.suggest_categorical("latent", b["latents"]),
                  "attention": trial.suggest_categorical("attention", (True, False)),
                  "rpa": trial.suggest_categorical("rpa", (True, False)),
                  "ado": trial.suggest_categorical("ado", (True, False)),
                  "rpa_ratio": 0.5, "ado_threshold": 0.1, "gp_weight": 0.0}
        if reading == "adversarial":
            config["gp_weight"] = trial.suggest_float("gp_weight", 1.0, 30.0, log=True)
        if config["rpa"]:
            config["rpa_ratio"] = trial.suggest_categorical("rpa_ratio", (0.25, 0.5))
        if config["ado"]:
            config["ado_threshold"] = trial.suggest_float("ado_threshold", 0.02, 0.4)
        return config

    def train(self, config: dict, ctx: TrialContext) -> SANGenerator:
        b = self.budget(ctx.budget)
        torch.manual_seed(ctx.seed)
        arch = make_arch(ctx.dataset.resolution, ctx.dataset.channels, int(config["latent"]), int(config["width"]),
                         attention=bool(config["attention"]), rpa=bool(config["rpa"]),
                         rpa_ratio=float(config["rpa_ratio"]), ado=bool(config["ado"]),
                         ado_threshold=float(config["ado_threshold"]),
                         # not searched; benches set the readings before them ("nearest", "free")
                         shortcut=str(config.get("shortcut", "bilinear")),
                         upsample_kernel=str(config.get("upsample_kernel", "resize")))
        hp = Hyper(lr=float(config["lr"]), weight_decay=float(config["weight_decay"]), lam=float(config["lam"]),
                   mse_weight=float(config["mse_weight"]), batch_size=int(config.get("batch_size", b["batch_size"])),
                   ema_half_life=b["ema_half_life"],
                   reading=str(config["reading"]), latent_mse_weight=float(config["latent_mse_weight"]),
                   gp_weight=float(config["gp_weight"]), betas=b.get("betas", (0.5, 0.99)))
        nets = prepare(Nets(arch), ctx.device)
        total = b["images_per_trial"]

        def wrap(n: Nets) -> SANGenerator:
            return SANGenerator(n.arch, n.G_ema)

        ctx.set_attr("arch", arch)
        ctx.set_attr("reading", hp.reading)
        ctx.set_attr("shared_kernels", len(nets.pairs))
        spread = train(nets, images_on(ctx), hp, total, ctx, Progress(ctx, total, b["reports"]), wrap)
        real = ctx.dataset.images[torch.randperm(ctx.dataset.images.shape[0],
                                                 generator=torch.Generator().manual_seed(0))[:256]]
        ctx.set_attr("diversity", spread)
        ctx.set_attr("diversity_real", diversity(real))
        ctx.save_state({"space": self.name, "arch": arch}, nets.tensors())
        return wrap(nets)
