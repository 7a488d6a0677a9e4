"""The ``mspgsen`` space: TPE over MSPG-SEN's hyperparameters, one on/off switch per module.

A trial trains one MSPG-SEN (see train.py) and hands back its EMA generator. The search decides
learning rates, width and latent size, D steps, R1 weight, D's dropout, and for every module a
switch, and its own knobs only when it is on (define-by-run, so a study is an ablation):

- ``gctdrn`` (branch kernels), ``dema`` (heads; ``contrastive``: weight, tau), ``global_branch``,
- ``afe`` (lambda_aux), ``feature_matching`` (lambda_fm), ``apfl`` (gamma, patience),
- ``balance`` (epsilon start, decay fraction, reward mix), ``progressive``.

Budgets (images are real images shown to D):

- ``tiny``: tests; 256 images at width 8, seconds on a CPU.
- ``small``: the README demo on a 2-core CPU (mnist5k, 32x32): 6k images at width 8 or 16,
  about a minute a trial, 8 trials in about 10 minutes with evaluation.
- ``full``: the source's scale on a GPU: batch 16, EMA 0.9999, widths 128 / 256, 800k images.

The trial records the modules it ran (``modules``), the architecture (``arch``), and what the
feedback modules did (``apfl``: adjustment counts and final multipliers; ``balancer``: action
counts, decisions, final epsilon) with ``ctx.set_attr`` (MLflow tags, Optuna user attrs).
"""
from __future__ import annotations

import torch

from genas.spaces.base import Space, TrialContext, register_space
from genas.spaces.gan import images_on
from genas.spaces.mspgsen.generator import MSPGSENGenerator
from genas.spaces.mspgsen.networks import levels_for, widths_for
from genas.spaces.mspgsen.train import Hyper, Trainer
from genas.spaces.progress import Progress

MODULES = ("gctdrn", "dema", "global_branch", "afe", "feature_matching", "apfl", "balance", "progressive")
KERNEL_SETS = {"3-5-7": (3, 5, 7), "3-5": (3, 5), "3": (3,)}

BUDGETS = {
    "tiny": {"images_per_trial": 256, "batch_size": 16, "eval_samples": 128, "quick_eval_samples": 64,
             "reports": 2, "trials": 4, "widths": (8,), "latents": (16,), "ema_half_life": 100,
             "interval": 2, "apfl_every": 1},
    "small": {"images_per_trial": 6_000, "batch_size": 32, "eval_samples": 1000, "quick_eval_samples": 256,
              "reports": 4, "trials": 8, "widths": (8, 16), "latents": (32, 64), "ema_half_life": 2_000,
              "interval": 2, "apfl_every": 6},
    "full": {"images_per_trial": 800_000, "batch_size": 16, "eval_samples": 10_000, "quick_eval_samples": 2_000,
             "reports": 8, "trials": 100, "widths": (128, 256), "latents": (256, 512), "ema_half_life": 110_000,
             "interval": 25, "apfl_every": 8},
}


def build_arch(config: dict, resolution: int, channels: int) -> dict:
    dema = bool(config["dema"])
    return {"latent": int(config["latent"]), "image_channels": channels, "resolution": resolution,
            "widths": widths_for(resolution, int(config["width"])),
            "kernels": list(KERNEL_SETS[config.get("kernels", "3")]) if config["gctdrn"] else [3],
            "heads": int(config.get("heads", 1)) if dema else 1,
            "gctdrn": bool(config["gctdrn"]), "dema": dema,
            "contrastive": dema and bool(config.get("contrastive", False)),
            "global_branch": bool(config["global_branch"])}


def build_hyper(config: dict, b: dict) -> Hyper:
    knobs = {k: config[k] for k in ("lambda_aux", "lambda_fm", "contrastive_weight", "tau", "apfl_gamma",
                                    "apfl_patience", "eps_start", "eps_decay_frac", "reward_mix") if k in config}
    return Hyper(lr_g=float(config["lr_g"]), lr_d=float(config["lr_d"]), n_critic=int(config["n_critic"]),
                 r1_gamma=float(config["r1_gamma"]), dropout=float(config["dropout"]),
                 batch_size=int(config.get("batch_size", b["batch_size"])), ema_half_life=b["ema_half_life"],
                 interval=b["interval"], apfl_every=b["apfl_every"], progressive=bool(config["progressive"]),
                 afe=bool(config["afe"]),
                 feature_matching=bool(config["feature_matching"]), apfl=bool(config["apfl"]),
                 balance=bool(config["balance"]), **knobs)


@register_space
class MSPGSENSpace(Space):
    """Two-flow feedback multi-scale progressive GAN (Sun, Song, Chi 2024): hyperparameters and module switches."""

    name = "mspgsen"
    generator_cls = MSPGSENGenerator
    default_sampler = "tpe"
    default_pruner = "median"
    budgets = BUDGETS

    def suggest(self, trial, ctx: TrialContext) -> dict:
        b = self.budget(ctx.budget)
        c = {"lr_g": trial.suggest_float("lr_g", 1e-4, 3e-3, log=True),
             "lr_d": trial.suggest_float("lr_d", 1e-4, 3e-3, log=True),
             "width": trial.suggest_categorical("width", b["widths"]),
             "latent": trial.suggest_categorical("latent", b["latents"]),
             "n_critic": trial.suggest_int("n_critic", 1, 2),
             "r1_gamma": trial.suggest_float("r1_gamma", 0.01, 10.0, log=True),
             "dropout": trial.suggest_float("dropout", 0.0, 0.2)}
        for module in MODULES:
            c[module] = trial.suggest_categorical(module, (True, False))
        if c["gctdrn"]:
            c["kernels"] = trial.suggest_categorical("kernels", tuple(KERNEL_SETS))
        if c["dema"]:
            c["heads"] = trial.suggest_int("heads", 2, 4)
            c["contrastive"] = trial.suggest_categorical("contrastive", (True, False))
            if c["contrastive"]:
                c["contrastive_weight"] = trial.suggest_float("contrastive_weight", 0.01, 1.0, log=True)
                c["tau"] = trial.suggest_float("tau", 0.05, 1.0, log=True)
        if c["afe"]:
            c["lambda_aux"] = trial.suggest_float("lambda_aux", 0.01, 1.0, log=True)
        if c["feature_matching"]:
            c["lambda_fm"] = trial.suggest_float("lambda_fm", 0.1, 10.0, log=True)
        if c["apfl"]:
            c["apfl_gamma"] = trial.suggest_float("apfl_gamma", 0.5, 0.95)
            c["apfl_patience"] = trial.suggest_int("apfl_patience", 2, 4)
        if c["balance"]:
            c["eps_start"] = trial.suggest_float("eps_start", 0.3, 1.0)
            c["eps_decay_frac"] = trial.suggest_float("eps_decay_frac", 0.2, 0.8)
            c["reward_mix"] = trial.suggest_float("reward_mix", 0.0, 1.0)
        return c

    def train(self, config: dict, ctx: TrialContext) -> MSPGSENGenerator:
        b = self.budget(ctx.budget)
        torch.manual_seed(ctx.seed)
        res = ctx.dataset.resolution
        n_levels = 1 if not config["progressive"] else levels_for(res)
        arch = build_arch(config, res, ctx.dataset.channels)
        hp = build_hyper(config, b)
        ctx.set_attr("modules", {m: bool(config[m]) for m in MODULES} | {"contrastive": arch["contrastive"]})
        ctx.set_attr("arch", arch)
        total = max(b["images_per_trial"] // n_levels, hp.batch_size) * n_levels
        trainer = Trainer(arch, hp, ctx, total)

        def on_report(step: int, metrics: dict[str, float]) -> None:
            ctx.report(step, {**metrics, **ctx.quick_eval(MSPGSENGenerator(arch, trainer.G_ema))})

        try:
            trainer.train(images_on(ctx), total, Progress(ctx, total, b["reports"]), on_report)
        finally:  # what the feedback modules did is worth seeing for pruned and failed trials too
            for key, value in trainer.summary().items():
                ctx.set_attr(key, value)
        return MSPGSENGenerator(arch, trainer.G_ema)
