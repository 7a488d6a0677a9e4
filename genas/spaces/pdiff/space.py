"""The ``pdiff`` space: neural network parameter diffusion (Wang et al. 2024) as a hyperparameter search.

A trial runs the source's three stages (see the modules of this package):
1. checkpoints.py - base classifier, then K + H checkpoints of the generated subset: one per epoch
   of augmented subset-only training with its BatchNorm layers in train mode (cached per
   dataset/recipe, so a study tunes stages 2-3 without retraining the base);
2. autoencoder.py + diffusion.py - the parameter autoencoder and the latent DDPM on the K;
3. evaluate.py - M generated models selected on the train split, reported on the held-out split,
   next to the K originals, their ensemble, the H held-out checkpoints, the source's noise-added
   and fine-tuned baselines and the memorisation numbers with their controls.

TPE tunes: the two noise augmentations (each on/off and its amplitude: an ablation as in the
source's Table 2c), latent channels, autoencoder depth and channels, DDPM training steps and
learning rate. Trial 0 of every study is the source's setting (xi_V = 0.001, xi_Z = 0.1, a
4-layer autoencoder). Objectives: ``acc_best`` (held-out accuracy of the model selected on
train), ``acc_median``, ``acc_mean``. Pruning (single objective) uses ``<objective>_quick``,
computed on the train split from a few generated models, so the held-out split never steers it.

Study-level options (``--set``): ``arch`` (convnet3, mlp3, resnet18, vit_tiny, convnext_tiny or
any timm name), ``subset`` (norm2, norms:I,J, all; "auto" is all for mlp3), ``checkpoints`` (K:
the checkpoints collected for the autoencoder; the source's Table 2a varies it), ``heldout`` (H),
``collect`` (epoch or step), ``models`` (M); "auto"/0 take the budget's default:

budget  arch      subset  K    H   M    T     where
tiny    convnet3  norm2   16   4   12   100   seconds on a CPU (digits)
small   convnet3  norm2   50   10  50   1000  the README demo: mnist5k on a 2-core CPU
full    resnet18  norm2   200  20  100  1000  the source's scale (K=200, M=100), on a GPU

``small`` selects the best model on 1,000 train images (``selection_images``), not all 4,000, to
keep a trial near a minute on a CPU; ``tiny`` and ``full`` select on the whole train split.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch

from genas.data import Dataset
from genas.errors import GenasError, TrainingDiverged
from genas.spaces.base import Space, TrialContext, register_space
from genas.spaces.progress import Progress
from genas.spaces.pdiff import evaluate
from genas.spaces.pdiff.autoencoder import ParamAutoencoder, train_autoencoder
from genas.spaces.pdiff.checkpoints import COLLECTIONS, Checkpoints, Recipe, collect, finetune
from genas.spaces.pdiff.classifiers import NUM_CLASSES, build_classifier, check_arch
from genas.spaces.pdiff.diffusion import Denoiser1d, Schedule, train_ddpm
from genas.spaces.pdiff.generator import Classifier, PDiffGenerator
from genas.spaces.pdiff.splits import Split, head, require_labels, train_heldout

QUICK_TRAIN_IMAGES = 1000
AE_LR = 3e-3


def _budget(arch: str, subset: str, checkpoints: int, heldout: int, base_epochs: int, ae_steps: int,
            ddpm_steps: tuple, batch_size: int, timesteps: int, width: int, blocks: int, ae_channels: tuple,
            latent_channels: tuple, models: int, noise_models: int, finetune: tuple[int, int], selection_images: int,
            quick: int, reports: int, trials: int) -> dict:
    return {"arch": arch, "subset": subset, "checkpoints": checkpoints, "heldout": heldout, "base_epochs": base_epochs,
            "ae_steps": ae_steps, "ddpm_steps": ddpm_steps, "batch_size": batch_size, "timesteps": timesteps,
            "denoiser_width": width, "denoiser_blocks": blocks, "ae_channels": ae_channels,
            "latent_channels": latent_channels, "models": models, "noise_models": noise_models,
            "finetune_models": finetune[0], "finetune_steps": finetune[1],  # the source's fine-tuning baseline
            "selection_images": selection_images,  # train images the best model is selected on (0: all)
            # what the search reads: parameter vectors shown to stages 2-3, models scored
            "images_per_trial": (ae_steps + max(ddpm_steps)) * batch_size, "eval_samples": models,
            "quick_eval_samples": quick, "reports": reports, "trials": trials}


BUDGETS = {
    "tiny": _budget("convnet3", "norm2", 16, 4, 3, 150, (100, 200), 16, 100, 32, 1, (8, 16), (4, 8),
                    12, 12, (4, 4), 0, 6, 2, 2),
    "small": _budget("convnet3", "norm2", 50, 10, 4, 400, (400, 800), 50, 1000, 64, 2, (16, 32, 64),
                     (2, 4, 8), 50, 25, (10, 16), 1000, 16, 4, 10),
    "full": _budget("resnet18", "norm2", 200, 20, 30, 30000, (30000, 60000), 200, 1000, 256, 4, (64, 128),
                    (4, 8, 16), 100, 100, (50, 50), 0, 20, 8, 32),
}
SOURCE_CONFIG = {"noise_v": True, "xi_v": 1e-3, "noise_z": True, "xi_z": 0.1, "ae_depth": 4}  # §3.1.2


class _LossWatch:
    """Running mean of a loss; raises TrainingDiverged when it goes non-finite (read every 16 steps)."""

    def __init__(self, name: str, advice: str) -> None:
        self.name, self.advice, self.sum, self.count = name, advice, None, 0

    def add(self, loss: torch.Tensor) -> None:
        self.sum = loss if self.sum is None else self.sum + loss
        self.count += 1

    def mean(self) -> float:
        value = float(self.sum / self.count) if self.count else 0.0
        if not math.isfinite(value):
            raise TrainingDiverged(f"{self.name} diverged (loss={value}); {self.advice}")
        return value

    def reset(self) -> None:
        self.sum, self.count = None, 0


@register_space
class PDiffSpace(Space):
    """p-diff: a latent DDPM over classifier parameters, scored on held-out accuracy of what it generates."""

    name = "pdiff"
    generator_cls = PDiffGenerator
    default_sampler = "tpe"
    default_pruner = "median"
    own_metrics = {"acc_best": "maximize", "acc_median": "maximize", "acc_mean": "maximize"}
    default_objectives = ("acc_best",)
    scores_images = False
    options = {"arch": "auto", "subset": "auto", "checkpoints": 0, "heldout": "auto", "collect": "epoch", "models": 0}
    budgets = BUDGETS
    #: the memorisation figures beside the objective in ``genas search`` / ``genas study show``
    leaderboard_columns = {"iou_gen_nearest_orig": "iou gen", "iou_heldout_nearest_orig": "held-out",
                           "iou_orig_nearest_orig": "LOO", "iou_noise_nearest_orig": "noise",
                           "memorisation": "verdict"}

    # ------------------------------------------------------------ study-level choices
    @staticmethod
    def _counts(opts: dict[str, Any]) -> tuple[int, int | None, str]:
        """(K or 0 for the budget's, H or None for the budget's, collect), each checked: one-line GenasErrors."""
        k, collect = int(opts["checkpoints"]), str(opts["collect"])
        if k < 0:
            raise GenasError(f"checkpoints={k} is negative; give the number of checkpoints to collect (0: the budget's)")
        if collect not in COLLECTIONS:
            raise GenasError(f"unknown collect={collect!r}; use epoch (one checkpoint per epoch) or step "
                             "(evenly spaced steps of an epoch)")
        held = str(opts["heldout"]).strip()
        if held == "auto":
            return k, None, collect
        try:
            h = int(held)
        except ValueError:
            raise GenasError(f"heldout={held!r} is not a number; give the checkpoints to hold out (0: none) or auto") from None
        if h < 0:
            raise GenasError(f"heldout={h} is negative; give the checkpoints to hold out (0: none) or auto")
        return k, h, collect

    def settings(self, budget: str, options: dict[str, Any]) -> dict[str, Any]:
        """The options with the budget's defaults filled in."""
        b = self.budget(budget)
        opts = {**self.options, **options}
        arch = b["arch"] if opts["arch"] == "auto" else str(opts["arch"])
        subset = str(opts["subset"])
        if subset == "auto":  # mlp3 has no normalisation layer: it is the source's whole-model case
            subset = "all" if arch == "mlp3" else b["subset"]
        k, h, collect = self._counts(opts)
        return {"arch": arch, "subset": subset, "checkpoints": k or b["checkpoints"],
                "heldout": b["heldout"] if h is None else h, "collect": collect,
                "models": int(opts["models"]) or b["models"]}

    def check(self, dataset: Dataset, options: dict[str, Any], *, budget: str | None = None,
              objectives: tuple[str, ...] = ()) -> None:
        """Labels, sane counts, an architecture that timm knows, that runs on this data and has the subset.

        Without a budget an "auto" arch cannot be resolved: it is then checked when the trial
        starts (train runs the same check first); with one, or for an explicit arch, the model
        is built and run on one input now.
        """
        require_labels(dataset)
        if int(dataset.labels.max()) >= NUM_CLASSES:
            raise GenasError(f"dataset {dataset.name} has more than {NUM_CLASSES} classes; pdiff builds 10-way classifiers")
        opts = {**self.options, **options}
        self._counts(opts)
        if budget is not None:
            s = self.settings(budget, opts)
            check_arch(s["arch"], s["subset"], dataset.channels, dataset.resolution)
        elif opts["arch"] != "auto":
            subset = str(opts["subset"])
            if subset == "auto":  # as settings() resolves it (every budget's default is norm2)
                subset = "all" if opts["arch"] == "mlp3" else "norm2"
            check_arch(str(opts["arch"]), subset, dataset.channels, dataset.resolution)

    def recipe(self, budget: str, settings: dict[str, Any]) -> Recipe:
        return Recipe(settings["arch"], settings["subset"], settings["checkpoints"], self.budget(budget)["base_epochs"],
                      heldout=settings["heldout"], collect=settings["collect"])

    def initial_trials(self, budget: str) -> list[dict]:
        """The source's setting first: both noise augmentations at its amplitudes, a 4-layer autoencoder."""
        return [dict(SOURCE_CONFIG)]

    # ------------------------------------------------------------ search
    def suggest(self, trial, ctx: TrialContext) -> dict:
        b = self.budget(ctx.budget)
        config = {"noise_v": trial.suggest_categorical("noise_v", [True, False])}
        config["xi_v"] = trial.suggest_float("xi_v", 1e-4, 1e-2, log=True) if config["noise_v"] else 0.0
        config["noise_z"] = trial.suggest_categorical("noise_z", [True, False])
        config["xi_z"] = trial.suggest_float("xi_z", 1e-2, 0.5, log=True) if config["noise_z"] else 0.0
        config["latent_channels"] = trial.suggest_categorical("latent_channels", b["latent_channels"])
        config["ae_depth"] = trial.suggest_int("ae_depth", 2, 4)
        config["ae_channels"] = trial.suggest_categorical("ae_channels", b["ae_channels"])
        config["ddpm_steps"] = trial.suggest_categorical("ddpm_steps", b["ddpm_steps"])
        config["ddpm_lr"] = trial.suggest_float("ddpm_lr", 1e-4, 3e-3, log=True)
        return config

    def train(self, config: dict, ctx: TrialContext) -> PDiffGenerator:
        b, s = self.budget(ctx.budget), self.settings(ctx.budget, ctx.options)
        check_arch(s["arch"], s["subset"], ctx.dataset.channels, ctx.dataset.resolution)
        device, batch = ctx.device, b["batch_size"]
        ckpts, hit = collect(ctx.dataset, self.recipe(ctx.budget, s), device)
        vectors = ckpts.train.to(device)
        k = int(vectors.shape[0])
        torch.manual_seed(ctx.seed)
        ctx.set_attr("pdiff", {"arch": s["arch"], "subset": s["subset"], "parameters": int(vectors.shape[1]),
                               "checkpoints": k, "heldout": s["heldout"], "collect": s["collect"],
                               "stage1_cache": "hit" if hit else "miss",
                               "base_train_accuracy": round(ckpts.base_accuracy, 4)})

        steps_ae, steps_ddpm = b["ae_steps"], int(config["ddpm_steps"])
        progress = Progress(ctx, (steps_ae + steps_ddpm) * batch, b["reports"])
        depth, channels, latent_channels = int(config["ae_depth"]), int(config["ae_channels"]), int(config["latent_channels"])
        ae = ParamAutoencoder(vectors.shape[1], depth, channels, latent_channels).to(device)
        watch = _LossWatch("the parameter autoencoder", "try a smaller xi_v/xi_z or fewer autoencoder channels")

        def ae_step(step: int, loss: torch.Tensor) -> None:
            watch.add(loss)
            if progress.step(batch):
                ctx.report(progress.done, {"loss_ae": watch.mean()})
                watch.reset()
            elif step % 16 == 15:
                watch.mean()

        sizes = [int(torch.Size(shape).numel()) for shape in ckpts.shapes]
        train_autoencoder(ae, vectors, steps_ae, batch, AE_LR, float(config["xi_v"]), float(config["xi_z"]), ae_step,
                          sizes=sizes)
        with torch.no_grad():
            latents = ae.encode(vectors)
        latent_scale = float(latents.std().clamp_min(1e-8))

        denoiser = Denoiser1d(latent_channels, b["denoiser_width"], b["denoiser_blocks"]).to(device)
        ema = copy.deepcopy(denoiser).requires_grad_(False)
        schedule = Schedule(b["timesteps"])
        arch = {"depth": depth, "channels": channels, "latent_channels": latent_channels,
                "width": b["denoiser_width"], "blocks": b["denoiser_blocks"], "k": k}

        def wrap() -> PDiffGenerator:
            c = Classifier(s["arch"], s["subset"], ctx.dataset.channels, ctx.dataset.resolution, NUM_CLASSES,
                           ckpts.names, ckpts.shapes)
            frozen = {n: t for n, t in ckpts.base_state.items() if n not in set(ckpts.names)}
            return PDiffGenerator(c, frozen, copy.deepcopy(ae.decoder), copy.deepcopy(ema), ae.mean.clone(),
                                  ae.scale.clone(), tuple(latents.shape[1:]), latent_scale, schedule, arch)

        quick_split = _quick_split(ctx.dataset)  # train images only: pruning must not see the held-out split
        evaluator = evaluate.SubsetEvaluator(_base_model(ckpts, ctx.dataset), ckpts.names, ckpts.shapes, device)
        watch = _LossWatch("the latent DDPM", f"try a lower ddpm_lr (ddpm_lr={config['ddpm_lr']:g})")

        def ddpm_step(step: int, loss: torch.Tensor) -> None:
            watch.add(loss)
            if progress.step(batch):
                generated = wrap().sample(b["quick_eval_samples"], seed=ctx.seed)
                ctx.report(progress.done, {"loss_ddpm": watch.mean(), **evaluate.quick(evaluator, generated, quick_split)})
                watch.reset()
            elif step % 16 == 15:
                watch.mean()

        train_ddpm(denoiser, ema, latents / latent_scale, schedule, steps_ddpm, batch, float(config["ddpm_lr"]), ddpm_step)
        return wrap()

    # ------------------------------------------------------------ scoring
    def final_metrics(self, objectives: tuple[str, ...], dataset: Dataset) -> list[str]:
        return list(dict.fromkeys(list(objectives) + list(self.own_metrics)))

    def score(self, generator: PDiffGenerator, names: list[str], ctx: TrialContext) -> dict[str, float]:
        b, s = self.budget(ctx.budget), self.settings(ctx.budget, ctx.options)
        ckpts, _ = collect(ctx.dataset, self.recipe(ctx.budget, s), ctx.device)
        train, held = train_heldout(ctx.dataset)
        evaluator = evaluate.SubsetEvaluator(_base_model(ckpts, ctx.dataset), ckpts.names, ckpts.shapes, ctx.device)
        generated = generator.sample(s["models"], seed=ctx.seed)

        def tune(starts: torch.Tensor, seed: int) -> torch.Tensor:
            return finetune(ckpts, _base_model(ckpts, ctx.dataset), train, starts, b["finetune_steps"], seed, ctx.device)

        per_model: dict = {}
        metrics = evaluate.report(evaluator, generated, ckpts.train, head(train, b["selection_images"]), held,
                                  noise_models=b["noise_models"], seed=ctx.seed, heldout_ckpts=ckpts.heldout,
                                  finetune=tune, finetune_models=b["finetune_models"], per_model=per_model)
        ctx.set_attr("pdiff_generated", per_model)  # each generated model's nearest original (of the K) and accuracy
        ctx.set_attr("memorisation", evaluate.verdict(metrics))
        return metrics


def _base_model(ckpts: Checkpoints, dataset: Dataset) -> torch.nn.Module:
    model = build_classifier(ckpts.recipe.arch, dataset.channels, dataset.resolution)
    model.load_state_dict(ckpts.base_state)
    return model


def _quick_split(dataset: Dataset) -> Split:
    return head(train_heldout(dataset)[0], QUICK_TRAIN_IMAGES)
