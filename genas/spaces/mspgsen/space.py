"""The ``mspgsen`` space: TPE over MSPG-SEN's hyperparameters, one on/off switch per module.

A trial trains one MSPG-SEN (see train.py) and hands back its EMA generator. The search decides
learning rates, width and latent size, batch size, D steps, R1 weight, D's dropout, and for every
module a switch, and its own knobs only when it is on (define-by-run, so a study is an ablation):

- ``gctdrn`` (branch kernels), ``dema`` (heads; ``contrastive``: weight, tau), ``global_branch``,
- ``afe`` (lambda_aux), ``feature_matching`` (lambda_fm),
- ``apfl`` (``apfl_meta``: the source's meta-learning loop, with its inner G steps, or the
  rule-based monitor alone; gamma, patience),
- ``balance`` (``balance_decay_ema``: which decay rate the DQN sets, the EMA's or the learning
  rate's; epsilon start, decay fraction, reward mix), ``progressive``.

Trial 0 of every study is the source's configuration (:meth:`MSPGSENSpace.initial_trials`): every
module on, AdamW, EMA, batch 16, dropout 10%, GCTDRN kernels 3-5-7, APFL's meta-learning loop,
the balancer setting the learning rate and the EMA decay. What the source leaves open takes the
values in :data:`SOURCE_OPEN` (genas's choices, not the source's); the source's initial learning
rate of 0.1 is not used (see there). Trial 1 is the same with every module off (ProGAN's two
convs per level, one resolution, the plain logistic GAN with R1): the baseline of the ablation.

Budgets (images are real images shown to D):

- ``tiny``: tests; 256 images at width 8, seconds on a CPU.
- ``small``: the README demo on a 2-core CPU (mnist5k, 32x32): 6k images at width 8 or 16,
  batch 16 or 32, a balancer decision every iteration.
- ``full``: the source's scale on a GPU: batch 16 or 32, EMA 0.9999 at batch 16, widths 128 / 256,
  800k images.

The trial records the modules it ran (``modules``), the architecture (``arch``), and what the
feedback modules did (``apfl``: adjustment counts, final multipliers, meta or rules;
``balancer``: the action histogram per head, decisions, updates, final epsilon, mean reward,
final knobs and the trial its Q-network was warm-started from) with ``ctx.set_attr`` (MLflow
tags, Optuna user attrs); the histogram is also in the reported metrics
(``balancer_<head>_<action>``, fractions of the decisions). The balancer's Q-network and last
transitions go to the Optuna user attr ``balancer_q`` only (too big for an MLflow tag): the next
trial with the balancer on starts from the best complete trial's.
"""
from __future__ import annotations

import optuna
import torch
from optuna.study import StudyDirection
from optuna.trial import TrialState

from genas.spaces.base import Space, TrialContext, register_space
from genas.spaces.gan import images_on
from genas.spaces.mspgsen.generator import MSPGSENGenerator
from genas.spaces.mspgsen.networks import levels_for, widths_for
from genas.spaces.mspgsen.train import Hyper, Trainer
from genas.spaces.progress import Progress

MODULES = ("gctdrn", "dema", "global_branch", "afe", "feature_matching", "apfl", "balance", "progressive")
KERNEL_SETS = {"3-5-7": (3, 5, 7), "3-5": (3, 5), "3": (3,)}

BUDGETS = {
    "tiny": {"images_per_trial": 256, "batch_sizes": (16,), "eval_samples": 128, "quick_eval_samples": 64,
             "reports": 2, "trials": 4, "widths": (8,), "latents": (16,), "ema_half_life": 100,
             "interval": 1, "apfl_every": 2},
    "small": {"images_per_trial": 6_000, "batch_sizes": (16, 32), "eval_samples": 1000, "quick_eval_samples": 256,
              "reports": 4, "trials": 8, "widths": (8, 16), "latents": (32, 64), "ema_half_life": 2_000,
              "interval": 1, "apfl_every": 12},
    "full": {"images_per_trial": 800_000, "batch_sizes": (16, 32), "eval_samples": 10_000, "swd_samples": 16_384,
             "quick_eval_samples": 2_000, "reports": 8, "trials": 100, "widths": (128, 256), "latents": (256, 512),
             "ema_half_life": 110_000, "interval": 10, "apfl_every": 8},
}
BALANCER_ATTR = "balancer_q"

#: the source's stated settings (section IV and the module descriptions)
SOURCE = {"batch_size": 16, "dropout": 0.1, **{m: True for m in MODULES}, "kernels": "3-5-7", "contrastive": True,
          "apfl_meta": True, "balance_decay_ema": True}
#: what trial 0 needs that the source leaves open. The source's initial learning rate, 0.1, is not
#: used: an AdamW step moves every weight by about the learning rate, and 0.1 is the size of the
#: weights themselves at these widths; the balancer adjusts the rate from the searched range's middle.
SOURCE_OPEN = {"lr_g": 1e-3, "lr_d": 1e-3, "n_critic": 1, "r1_gamma": 1.0, "heads": 3, "contrastive_weight": 0.1,
               "tau": 0.1, "lambda_aux": 0.1, "lambda_fm": 1.0, "apfl_inner_steps": 1, "apfl_gamma": 0.7,
               "apfl_patience": 3, "eps_start": 1.0, "eps_decay_frac": 0.5, "reward_mix": 1.0}


#: what a configuration with every module off still sets
BASE_KEYS = ("lr_g", "lr_d", "width", "latent", "batch_size", "n_critic", "r1_gamma", "dropout")


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
    knobs = {k: config[k] for k in ("lambda_aux", "lambda_fm", "contrastive_weight", "tau", "apfl_meta",
                                    "apfl_inner_steps", "apfl_gamma", "apfl_patience", "balance_decay_ema",
                                    "eps_start", "eps_decay_frac", "reward_mix") if k in config}
    return Hyper(lr_g=float(config["lr_g"]), lr_d=float(config["lr_d"]), n_critic=int(config["n_critic"]),
                 r1_gamma=float(config["r1_gamma"]), dropout=float(config["dropout"]),
                 batch_size=int(config.get("batch_size", b["batch_sizes"][0])), ema_half_life=b["ema_half_life"],
                 interval=b["interval"], apfl_every=b["apfl_every"], progressive=bool(config["progressive"]),
                 afe=bool(config["afe"]),
                 feature_matching=bool(config["feature_matching"]), apfl=bool(config["apfl"]),
                 balance=bool(config["balance"]), **knobs)


def champion_balancer(trial: optuna.Trial | None) -> tuple[int, dict] | None:
    """``(number, payload)`` of the balancer of the best complete trial in ``trial``'s study that kept one."""
    if trial is None:
        return None
    study = trial.study
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values and BALANCER_ATTR in t.user_attrs]
    if not done:
        return None
    pick = max if study.directions[0] == StudyDirection.MAXIMIZE else min
    best = pick(done, key=lambda t: t.values[0])
    return best.number, best.user_attrs[BALANCER_ATTR]


@register_space
class MSPGSENSpace(Space):
    """Two-flow feedback multi-scale progressive GAN (Sun, Song, Chi 2024): hyperparameters and module switches."""

    name = "mspgsen"
    generator_cls = MSPGSENGenerator
    default_sampler = "tpe"
    default_pruner = "median"
    budgets = BUDGETS

    def initial_trials(self, budget: str) -> list[dict]:
        """The source's configuration first (every switch, and every knob the switches bring, named),
        then the same network and settings with every module off: the baseline the modules are
        measured against, and an anchor for TPE (on photos at ``small``, seed 0, it scored SWD
        145.5 where the source's configuration scored 204.4; bench/README.md)."""
        b = self.budget(budget)
        source = {**SOURCE, **SOURCE_OPEN, "width": max(b["widths"]), "latent": max(b["latents"]),
                  "batch_size": min(b["batch_sizes"], key=lambda n: abs(n - SOURCE["batch_size"]))}
        base = {key: source[key] for key in BASE_KEYS} | {module: False for module in MODULES}
        return [source, base]

    def suggest(self, trial, ctx: TrialContext) -> dict:
        b = self.budget(ctx.budget)
        c = {"lr_g": trial.suggest_float("lr_g", 1e-4, 3e-3, log=True),
             "lr_d": trial.suggest_float("lr_d", 1e-4, 3e-3, log=True),
             "width": trial.suggest_categorical("width", b["widths"]),
             "latent": trial.suggest_categorical("latent", b["latents"]),
             "batch_size": trial.suggest_categorical("batch_size", b["batch_sizes"]),
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
            c["apfl_meta"] = trial.suggest_categorical("apfl_meta", (True, False))
            if c["apfl_meta"]:
                c["apfl_inner_steps"] = trial.suggest_int("apfl_inner_steps", 1, 3)
            c["apfl_gamma"] = trial.suggest_float("apfl_gamma", 0.5, 0.95)
            c["apfl_patience"] = trial.suggest_int("apfl_patience", 2, 4)
        if c["balance"]:
            c["balance_decay_ema"] = trial.suggest_categorical("balance_decay_ema", (True, False))
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
        ctx.set_attr("modules", {m: bool(config[m]) for m in MODULES}
                     | {"contrastive": arch["contrastive"], "apfl_meta": hp.apfl and hp.apfl_meta,
                        "balance_decay_ema": hp.balance and hp.balance_decay_ema})
        ctx.set_attr("arch", arch)
        total = max(b["images_per_trial"] // n_levels, hp.batch_size) * n_levels
        trainer = Trainer(arch, hp, ctx, total, warm=champion_balancer(ctx.trial) if hp.balance else None)

        def on_report(step: int, metrics: dict[str, float]) -> None:
            ctx.report(step, {**metrics, **ctx.quick_eval(MSPGSENGenerator(arch, trainer.G_ema))})

        try:
            trainer.train(images_on(ctx), total, Progress(ctx, total, b["reports"]), on_report)
        finally:  # what the feedback modules did is worth seeing for pruned and failed trials too
            for key, value in trainer.summary().items():
                ctx.set_attr(key, value)
            if trainer.dqn is not None and ctx.trial is not None:  # for the next trial's warm start
                ctx.trial.set_user_attr(BALANCER_ATTR, trainer.dqn.payload())
        return MSPGSENGenerator(arch, trainer.G_ema)
