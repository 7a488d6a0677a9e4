"""The ``dggan`` space: one trial = one child grown from a parent by one action, then trained.

The growth sampler (genas/search/growth.py) picks the parent among the top-k trials and one of
:meth:`DGGANSpace.next_actions`; this space applies it to the parent's saved state and trains
the child for ``images_per_trial`` images (new layers fade in over the first half).

Budgets (images are real images shown to the critic):

- ``tiny``: tests; a few hundred images at widths 8/16, seconds on a CPU.
- ``small``: the README demo on a 2-core CPU (mnist5k, 32x32): widths 16/32, ~30-60 s a trial,
  24 trials in about 10 minutes including evaluation.
- ``full``: the paper's scale on a GPU: 800k images per child, widths up to 512.
"""
from __future__ import annotations

from typing import TypeVar

import torch

from genas.errors import GenasError
from genas.spaces.base import GrowableSpace, TrialContext, register_space
from genas.spaces.dggan.generator import DGGANGenerator
from genas.spaces.dggan.network import Nets, apply_action, finalize, inherit, resolution_of, root_arch, validate_arch
from genas.spaces.dggan.train import Hyper, Progress, train_phase

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)
CHANNELS = (8, 16, 32, 64, 128, 256, 512)

BUDGETS = {
    "tiny": {"images_per_trial": 256, "batch_size": 16, "eval_samples": 128, "quick_eval_samples": 64,
             "reports": 2, "top_k": 2, "trials": 4, "channels": (8, 16), "latent": 16,
             "max_stage_layers": 3, "ema_half_life": 100},
    "small": {"images_per_trial": 6_000, "batch_size": 32, "eval_samples": 1000, "quick_eval_samples": 256,
              "reports": 4, "top_k": 3, "trials": 24, "channels": (16, 32), "latent": 64,
              "max_stage_layers": 3, "ema_half_life": 2_000},
    "full": {"images_per_trial": 800_000, "batch_size": 64, "eval_samples": 10_000, "quick_eval_samples": 2_000,
             "reports": 8, "top_k": 5, "trials": 100, "channels": (64, 128, 256, 512), "latent": 512,
             "max_stage_layers": 4, "ema_half_life": 10_000},
}


def images_on(ctx: TrialContext) -> torch.Tensor:
    """The dataset where training reads it: on the GPU when there is one (it fits at these sizes)."""
    return ctx.dataset.images.to(ctx.device) if ctx.device.type == "cuda" else ctx.dataset.images


def prepare(nets: ModuleT, ctx: TrialContext) -> ModuleT:
    """Networks on the trial's device; on CUDA channels_last with cuDNN autotuning (any family's nets)."""
    nets = nets.to(ctx.device)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        nets = nets.to(memory_format=torch.channels_last)
    return nets


@register_space
class DGGANSpace(GrowableSpace):
    """Dynamically Grown GAN (Liu et al., AAAI 2021): the search grows G and D one action at a time."""

    name = "dggan"
    generator_cls = DGGANGenerator
    default_sampler = "growth"
    # The top-k of the history is dggan's selection. A child that just grew scores worse than
    # its parent until the new layers have trained, so a pruner would cut nearly every growth.
    default_pruner = "none"
    samplers = ("growth",)
    budgets = BUDGETS
    action_params = {"action": ("root", "g_layer", "d_layer", "grow"), "channels": CHANNELS, "kernel": (1, 3, 5)}

    # ------------------------------------------------------------ actions
    def root_actions(self, resolution: int, budget: str) -> list[dict]:
        b = self.budget(budget)
        return [{"action": "root", "channels": c, "kernel": k}
                for c in b["channels"] for k in self.action_params["kernel"]]

    def next_actions(self, arch: dict, resolution: int, budget: str) -> list[dict]:
        b = self.budget(budget)
        kinds = []
        if len(arch["g"][-1]) < b["max_stage_layers"]:
            kinds.append("g_layer")
        if len(arch["d"][-1]) < b["max_stage_layers"]:
            kinds.append("d_layer")
        if resolution_of(arch) * 2 <= resolution:
            kinds.append("grow")
        return [{"action": a, "channels": c, "kernel": k}
                for a in kinds for c in b["channels"] for k in self.action_params["kernel"]]

    def arch_summary(self, arch: dict) -> str:
        res = resolution_of(arch)
        return f"{res}×{res} G{sum(map(len, arch['g']))} D{sum(map(len, arch['d'])) + 1}"

    def action_label(self, action: dict, parent_arch: dict | None) -> str:
        """``root 4×4 32ch 3×3``, ``G +conv 32ch 3×3 @16``, ``D +conv …``, ``grow G+D 16→32 32ch 3×3``."""
        layer = f"{action['channels']}ch {action['kernel']}×{action['kernel']}"
        kind = action["action"]
        if kind == "root" or parent_arch is None:
            return f"root 4×4 {layer}"
        res = resolution_of(parent_arch)
        if kind == "grow":
            return f"grow G+D {res}→{2 * res} {layer}"
        return f"{'G' if kind == 'g_layer' else 'D'} +conv {layer} @{res}"

    # ------------------------------------------------------------ suggest / train
    def suggest(self, trial, ctx: TrialContext) -> dict:
        if "parent" not in trial.user_attrs:
            raise GenasError("space dggan searches with the growth sampler; leave --sampler out or pass --sampler growth")
        parent = trial.user_attrs["parent"]
        action = trial.suggest_categorical("action", self.action_params["action"])
        channels = trial.suggest_categorical("channels", self.action_params["channels"])
        kernel = trial.suggest_categorical("kernel", self.action_params["kernel"])
        if (parent is None) != (action == "root"):
            raise GenasError(f"action {action!r} does not fit parent {parent!r}: a root trial takes the 'root' "
                             "action and a child one of g_layer, d_layer, grow; use --sampler growth")
        return {"parent": parent, "action": action, "channels": channels, "kernel": kernel,
                "lr": trial.suggest_float("lr", 3e-4, 3e-3, log=True),
                "n_critic": trial.suggest_int("n_critic", 1, 2),
                "gp_weight": trial.suggest_float("gp_weight", 1.0, 10.0, log=True)}

    def hyper(self, config: dict, b: dict) -> Hyper:
        return Hyper(lr=float(config["lr"]), n_critic=int(config["n_critic"]), gp_weight=float(config["gp_weight"]),
                     batch_size=int(config.get("batch_size", b["batch_size"])), ema_half_life=b["ema_half_life"])

    def train(self, config: dict, ctx: TrialContext) -> DGGANGenerator:
        b = self.budget(ctx.budget)
        torch.manual_seed(ctx.seed)
        action = {k: config[k] for k in ("action", "channels", "kernel")}
        parent = ctx.parent_state()
        if action["action"] == "root":
            arch = root_arch(b["latent"], ctx.dataset.channels, action["channels"], action["kernel"])
            nets, lineage = Nets(arch), {"depth": 1, "lineage_images": 0}
        else:
            if parent is None:
                raise GenasError(f"trial grows parent {config.get('parent')!r} but the parent's state is missing; "
                                 "it was not saved (failed or deleted run)")
            parent_config, tensors = parent
            if parent_config.get("space") != self.name:
                raise GenasError(f"parent state is for space {parent_config.get('space')!r}, not 'dggan'")
            parent_arch = validate_arch(parent_config.get("arch"))
            if action["action"] == "grow" and resolution_of(parent_arch) * 2 > ctx.dataset.resolution:
                raise GenasError(f"cannot grow beyond the dataset resolution {ctx.dataset.resolution}")
            arch, fades = apply_action(parent_arch, action)
            nets = inherit(tensors, arch, fades)
            lineage = {"depth": parent_config.get("depth", 1) + 1,
                       "lineage_images": parent_config.get("lineage_images", 0)}
        if arch["image_channels"] != ctx.dataset.channels:
            raise GenasError(f"the lineage has {arch['image_channels']}-channel images but dataset "
                             f"{ctx.dataset.name} has {ctx.dataset.channels}; start a new study for this dataset")
        nets = prepare(nets, ctx)
        total = b["images_per_trial"]

        def wrap(n: Nets) -> DGGANGenerator:
            return DGGANGenerator(n.arch, n.G_ema)

        train_phase(nets, images_on(ctx), self.hyper(config, b), total, ctx, Progress(ctx, total, b["reports"]), wrap)
        nets = finalize(nets)
        ctx.set_attr("arch", arch)
        lineage["lineage_images"] += total
        ctx.save_state({"space": self.name, "arch": arch, "action": action, **lineage}, nets.tensors())
        return wrap(nets)
