"""The ``dggan`` space: the Dynamically Grown GAN (Liu et al., AAAI 2021) searched as a beam.

The search (``genas/search/beam.py`` with this space's actions) alternates growing and training,
as the paper's Figure 1 does: generation 0 holds ``roots`` minimal networks (different widths
and kernels); generation g expands the ``k`` best of generation g-1, each into ``children``
sampled growth actions (``actions.py``) and, at the dataset's resolution, a control child that
only trains on (lineages grow first, so the one generation the plan leaves free falls at full
resolution); every candidate of a generation trains on the same images (``train.py``), so
candidates are ranked only against candidates with the same training behind them. Training
hyperparameters belong to a lineage: set for the roots (the study's), inherited by every child.
After the plan, the finalist (the best of the last planned generation) trains on alone for
``finish`` images (a lineage's): the search's images go to choosing the model, the finishing
images to the model chosen. The 32x32 images are the ones that pay (``bench_dggan_lineage.py``:
20,000 finishing images gained what doubling every generation gained, at one candidate's cost
instead of twice the search's); on the README's main job at seed 0 the 20,000 finishing images
took the share of samples digitnet reads as a digit from 36% (the parent) to 60% (half as many:
49%), for about 1.5 min more of the job's 11 (bench/README.md).

Images per generation grow geometrically, ``images_g = images_0 * ratio ** g``: a lineage spends
little at 4x4 and most of its images at the resolutions that make the samples (at equal images a
GAN trained longer at full resolution is better, and the low-resolution steps are cheap to
search). The budget's lineage (``gan/budgets.IMAGES``: the images behind one model of any GAN
family) is reached at the last planned generation, ``generations`` = the grows the dataset's
resolution needs plus one; generations past the plan train as long as the last planned one.
Options (``--set KEY=VALUE``, 0 or empty: the budget's): ``k``, ``roots``, ``children``,
``images`` (per candidate of generation 0), ``ratio`` (1: every generation the same),
``generations``, ``finish`` (the finalist's images; 0: no finishing generation), ``cooldown``
(the share of the finalist's images over which its learning rate falls to zero; 0 at every
budget: at two mnist5k seeds it lowered SWD and cost readable digits, bench/README.md), ``widths`` and
``kernels`` (comma-separated choices), ``layers`` (most convs per stage), ``loss`` (logistic,
hinge, wgan-gp), ``augment`` (DiffAugment policy), ``augment_target`` (0: augment every image;
else ADA's target for D's confidence on the real images, 0.6 in its paper), ``lr`` (every root's),
``r1_gamma`` (R1's weight with the logistic and hinge losses).

``small`` is sized to keep the README's main job under 15 minutes on the slowest 2-core machine
seen (an AMD EPYC with AVX2 only, where the same job ran 3.4 times slower than on the fastest):
one width, 32 channels (16 at 32x32 by :func:`actions.channels_at`; two widths made the job's
time depend on the width the search drew), one lineage followed (``k`` 1) and a lineage's
finishing images. On that machine the main job with ``k`` 2 and 40,000 finishing images took
24.3 min (80% of the finalist's samples read as a digit); ``k`` 1 took 19.4-19.5 min and read
as well (78%, 81%; SWD 10.6, 10.4), the second lineage had bought nothing; 20,000 finishing
images read 73% and 77% (SWD 16.6, 13.4) in jobs of 14.0 and 14.7 min, where the no-search
DCGAN on the same 40,048 images reads 8% and 13% (bench/README.md). ``--set finish=40000``
buys the 80% back where the machine allows it (about 6 min on the fastest machine seen); on
photos it matters more: the same three parents scored SWD 45.2 with 40,000 finishing images and
62.8 with 20,000 (bench/README.md, fifteenth session). With one width and ``k`` 1 the search
at ``small`` chooses the root (four: kernels 3 and 5, each twice) and, at 32x32, between a layer
and training on; ``full`` searches widths, kernels and depths with ``k`` 3.

The ``small`` learning rate is 4e-3 and its batch 16 (``tiny`` and ``full`` keep 2e-3, unmeasured
at 4e-3): a lineage sees few images (40,048), and more steps on them pay. At batch 32 (1,253
steps) the main job's finalist at 4e-3 read as a digit in 72% and 77% of its samples (mnist5k,
seeds 0, 1) where 2e-3 gave 60% and 58%, at the same SWD; at 8e-3 better still (79%, 83%), but
SWD stopped agreeing and registered a parent over its finalist. Batch 16 at 4e-3 (2,503 steps)
took the main job from 73% to 76% readable, fid_digitnet 56 to 36 and SWD 17.0 to 15.5 over
three seeds, and photos' SWD from 85.5 to 53.5, for about 10% more time
(bench/README.md).
"""
from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np
import torch

from genas.data import Dataset
from genas.errors import GenasError
from genas.spaces.base import GrowableSpace, TrialContext, register_space
from genas.spaces.dggan import actions as growth
from genas.spaces.dggan import train as dggan_train
from genas.spaces.dggan.train import DGGANGenerator
from genas.spaces.gan import GANLoss, Recipe
from genas.spaces.gan.augment import parse_policy
from genas.spaces.gan.budgets import EVAL_SAMPLES, IMAGES, QUICK_EVAL_SAMPLES, SWD_SAMPLES
from genas.spaces.gan.grown import KERNELS, resolution_of, root_arch
from genas.spaces.gan.losses import R1_GAMMA, check_loss

CHANNELS = (8, 16, 32, 64, 128, 256, 512)
LR_RANGE = (1e-4, 1e-2)  # what --set lr can be

BUDGETS = {
    "tiny": {"batch_size": 16, "reports": 2, "widths": (8, 16), "kernels": (3,), "latent": 16, "layers": 3,
             "roots": 2, "k": 1, "children": 1, "lr": 2e-3, "r1_gamma": R1_GAMMA, "fade": 0.25, "ema_half_life": 100,
             "ratio": 1.5},
    "small": {"batch_size": 16, "reports": 2, "widths": (32,), "kernels": (3, 5), "latent": 64, "layers": 3,
              "roots": 4, "k": 1, "children": 1, "lr": 4e-3, "r1_gamma": R1_GAMMA, "fade": 0.25, "ema_half_life": 2_000,
              "ratio": 2.0},
    "full": {"batch_size": 64, "reports": 4, "widths": (128, 256, 512), "kernels": (3, 5), "latent": 512,
             "layers": 4, "roots": 6, "k": 3, "children": 3, "lr": 2e-3, "r1_gamma": R1_GAMMA, "fade": 0.25,
             "ema_half_life": 10_000, "ratio": 2.0},
}
for _name, _b in BUDGETS.items():
    _b.update(lineage_images=IMAGES[_name], finish=IMAGES[_name], cooldown=0.0, eval_samples=EVAL_SAMPLES[_name],
              swd_samples=SWD_SAMPLES[_name], quick_eval_samples=QUICK_EVAL_SAMPLES[_name])


def _choices(text: str, name: str, allowed: tuple[int, ...]) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v not in allowed for v in values):
        raise GenasError(f"option {name}={text!r} must be comma-separated values from {', '.join(map(str, allowed))}")
    return values


@register_space
class DGGANSpace(GrowableSpace):
    """Dynamically Grown GAN: a beam over growth actions, generation by generation."""

    name = "dggan"
    generator_cls = DGGANGenerator
    default_sampler = "growth"
    # A pruner compares a child with the whole history at equal steps; the beam compares it with
    # its own generation at its end, which is the selection the method defines.
    default_pruner = "none"
    samplers = ("growth",)
    budgets = BUDGETS
    action_params = {"action": growth.KINDS, "channels": CHANNELS, "kernel": KERNELS}
    options = {"k": 0, "roots": 0, "children": 0, "images": 0, "ratio": 0.0, "generations": 0, "finish": -1,
               "cooldown": -1.0, "widths": "", "kernels": "", "layers": 0, "loss": "logistic", "augment": "",
               "augment_target": 0.0, "lr": 0.0, "r1_gamma": 0.0}

    # ------------------------------------------------------------ settings
    def settings(self, options: dict[str, Any], budget: str, resolution: int) -> dict:
        """The budget's values with the study's options over them (0 / empty: the budget's)."""
        b = self.budget(budget)
        s = {key: options.get(key) or b[key] for key in ("k", "roots", "children", "layers", "lr", "ratio", "r1_gamma")}
        s["widths"] = _choices(options["widths"], "widths", CHANNELS) if options.get("widths") else b["widths"]
        s["kernels"] = _choices(options["kernels"], "kernels", KERNELS) if options.get("kernels") else b["kernels"]
        s["generations"] = options.get("generations") or growth.grows_to(resolution) + 1
        first = options.get("images") or b["lineage_images"] / sum(s["ratio"] ** g for g in range(s["generations"] + 1))
        batch = b["batch_size"]
        s["schedule"] = [max(-(-round(first * s["ratio"] ** g) // batch) * batch, batch)  # whole batches
                         for g in range(s["generations"] + 1)]
        finish = b["finish"] if options.get("finish", -1) < 0 else options["finish"]
        s["finish"] = -(-finish // batch) * batch
        s["cooldown"] = b["cooldown"] if options.get("cooldown", -1) < 0 else options["cooldown"]
        return {**b, **s, "loss": options.get("loss", "logistic"), "augment": options.get("augment", ""),
                "augment_target": options.get("augment_target", 0.0)}

    @staticmethod
    def finishes(settings: dict, generation: int) -> bool:
        """Whether ``generation`` is the finalist's finishing generation."""
        return bool(settings["finish"]) and generation == settings["generations"] + 1

    @classmethod
    def images_at(cls, settings: dict, generation: int) -> int:
        """Images per candidate of ``generation``: the schedule's, the finalist's ``finish``, and past
        the plan as many as the last planned one."""
        if cls.finishes(settings, generation):
            return settings["finish"]
        return settings["schedule"][min(generation, len(settings["schedule"]) - 1)]

    def check(self, dataset: Dataset, options: dict[str, Any], *, budget: str | None = None,
              objectives: tuple[str, ...] = ()) -> None:
        check_loss(options["loss"])
        parse_policy(options["augment"])
        if not 0.0 <= options["augment_target"] < 1.0:
            raise GenasError(f"option augment_target={options['augment_target']:g} must lie in [0, 1) (ADA's target "
                             "for E[sign(D(real))], 0.6 in its paper; 0: augment every image)")
        if options["augment_target"] and not options["augment"]:
            raise GenasError(f"option augment_target={options['augment_target']:g} adapts how often a policy "
                             "applies; set augment too (e.g. augment=translation)")
        for key in ("k", "roots", "children", "images", "generations", "layers"):
            if options[key] < 0:
                raise GenasError(f"option {key}={options[key]} must be >= 0 (0: the budget's)")
        if options["finish"] < -1:
            raise GenasError(f"option finish={options['finish']} must be >= 0 (the finalist's images; 0: no "
                             "finishing generation)")
        if not (options["cooldown"] == -1 or 0.0 <= options["cooldown"] <= 1.0):
            raise GenasError(f"option cooldown={options['cooldown']:g} must lie in [0, 1] (the share of the "
                             "finalist's images over which the learning rate falls to zero; 0: constant)")
        if options["ratio"] and not 1.0 <= options["ratio"] <= 4.0:
            raise GenasError(f"option ratio={options['ratio']:g} must lie in [1, 4] (1: every generation the same)")
        if options["r1_gamma"] < 0:
            raise GenasError(f"option r1_gamma={options['r1_gamma']:g} must be >= 0 (0: the budget's)")
        if options["lr"] and not LR_RANGE[0] <= options["lr"] <= LR_RANGE[1]:
            raise GenasError(f"option lr={options['lr']:g} must lie in [{LR_RANGE[0]:g}, {LR_RANGE[1]:g}]")
        resolution = dataset.resolution
        if resolution < 4 or resolution & (resolution - 1):
            raise GenasError(f"dggan needs a power-of-two resolution >= 4, got {resolution}")
        s = self.settings(options, budget or "small", resolution)
        if not any(k >= 3 for k in s["kernels"]) and resolution > 4:
            raise GenasError(f"kernels={','.join(map(str, s['kernels']))} has no spatial kernel (3 or more) for the "
                             "grows; add 3 or 5")
        if s["generations"] < growth.grows_to(resolution):
            raise GenasError(f"generations={s['generations']} cannot reach {resolution}x{resolution} from 4x4 "
                             f"(one grow a generation); use at least {growth.grows_to(resolution)}")

    def default_trials(self, budget: str, options: dict[str, Any], resolution: int) -> int:
        """The plan's candidates: the roots, then per parent the children its lineage may take (only
        grows below the dataset's resolution; a control and layers at it), followed along the
        lineage with the fewest layers, so exact for a plan with one free generation and an upper
        bound past it; then the finalist's finishing generation."""
        s = self.settings(options, budget, resolution)
        arch = root_arch(s["latent"], 1, s["widths"][0], s["kernels"][0])
        rng = np.random.default_rng(0)  # the number of children does not depend on the draw
        total = candidates = s["roots"]
        for generation in range(1, s["generations"] + 1):
            kids = growth.child_actions(arch, resolution, s["generations"] - generation, children=s["children"],
                                        channels=s["widths"], kernels=s["kernels"], max_layers=s["layers"], rng=rng)
            candidates = min(s["k"], candidates) * len(kids)
            total += candidates
            grow = next((a for a in kids if a["action"] == "grow"), None)
            arch = growth.apply_action(arch, grow)[0] if grow else arch
        return total + (1 if s["finish"] else 0)

    def trial_images(self, budget: str, options: dict[str, Any], resolution: int) -> int:
        return int(self.settings(options, budget, resolution)["schedule"][-1])

    # ------------------------------------------------------------ the beam's plan
    def beam(self, options: dict[str, Any], budget: str, resolution: int) -> dict:
        s = self.settings(options, budget, resolution)
        return {"k": s["k"], "generations": s["generations"], "finish": s["finish"] > 0}

    def root_actions(self, options: dict[str, Any], budget: str, resolution: int,
                     rng: np.random.Generator) -> list[dict]:
        """``roots`` minimal networks over the width x kernel grid, all at the study's learning rate
        (more roots than the grid has cells repeat it: the same networks from other seeds).

        The roots do not draw learning rates: a rate is judged on generation 0's few hundred
        images at 4x4 and then rules the lineage at 32x32, where it does not carry over (mnist5k,
        seed 0: the 4x4 winner drew 7.3e-4; its 16x16 model spread over 9.2 digits and its 32x32
        child collapsed onto 2.7, SWD 41.6; the same child at 2e-3 (then the default): 5.8 digits, SWD
        30.2; bench/README.md).
        """
        s = self.settings(options, budget, resolution)
        grid = list(product(s["widths"], s["kernels"]))
        order = rng.permutation(len(grid))
        out = []
        for i in range(s["roots"]):
            channels, kernel = grid[int(order[i % len(grid)])]
            out.append({"action": "root", "channels": int(channels), "kernel": int(kernel), "lr": float(s["lr"])})
        return out

    def child_actions(self, parent_params: dict, parent_arch: dict, generations_left: int | None,
                      options: dict[str, Any], budget: str, resolution: int, rng: np.random.Generator) -> list[dict]:
        s = self.settings(options, budget, resolution)
        acts = growth.child_actions(parent_arch, resolution, generations_left, children=s["children"],
                                    channels=s["widths"], kernels=s["kernels"], max_layers=s["layers"], rng=rng)
        return [{**a, "lr": float(parent_params["lr"])} for a in acts]  # a lineage keeps its hyperparameters

    def finish_action(self, parent_params: dict, parent_arch: dict, options: dict[str, Any], budget: str,
                      resolution: int) -> dict:
        """The finalist trains on (its lineage's hyperparameters)."""
        top = parent_arch["g"][-1][-1]
        return {"action": "train", "channels": top["channels"], "kernel": top["kernel"], "lr": float(parent_params["lr"])}

    def arch_summary(self, arch: dict) -> str:
        res = resolution_of(arch)
        return f"{res}×{res} G{sum(map(len, arch['g']))} D{sum(map(len, arch['d'])) + 1}"

    def action_label(self, action: dict, parent_arch: dict | None) -> str:
        return growth.label(action, parent_arch)

    # ------------------------------------------------------------ suggest / train
    def suggest(self, trial, ctx: TrialContext) -> dict:
        if "parent" not in trial.user_attrs:
            raise GenasError("space dggan searches with the growth sampler; leave --sampler out or pass --sampler growth")
        config = {"parent": trial.user_attrs["parent"], "generation": trial.user_attrs.get("generation", 0)}
        for name, choices in self.action_params.items():
            config[name] = trial.suggest_categorical(name, choices)
        config["lr"] = trial.suggest_float("lr", *LR_RANGE, log=True)
        if (config["parent"] is None) != (config["action"] == "root"):
            raise GenasError(f"action {config['action']!r} does not fit parent {config['parent']!r}: a root takes "
                             "the 'root' action and a child one of train, g_layer, d_layer, grow; use --sampler growth")
        return config

    def train(self, config: dict, ctx: TrialContext) -> DGGANGenerator:
        s = self.settings(ctx.options, ctx.budget, ctx.dataset.resolution)
        torch.manual_seed(ctx.seed)
        action = {k: config[k] for k in ("action", "channels", "kernel")}
        parent = None if action["action"] == "root" else ctx.parent_state()
        nets, before = dggan_train.build(action, parent, s["latent"], ctx)
        generation = int(config.get("generation", 0))
        recipe = Recipe(loss=GANLoss(kind=s["loss"], r1_gamma=s["r1_gamma"]), lr_g=float(config["lr"]),
                        lr_d=float(config["lr"]), batch_size=s["batch_size"], augment=s["augment"],
                        augment_target=s["augment_target"],
                        cooldown=s["cooldown"] if self.finishes(s, generation) else 0.0)
        images = self.images_at(s, generation)
        nets = dggan_train.train(nets, recipe, images, fade_share=s["fade"], ema_half_life=s["ema_half_life"],
                                 lineage_images=before["lineage_images"], reports=s["reports"], ctx=ctx)
        lineage_images = before["lineage_images"] + images
        res = resolution_of(nets.arch)
        for key, value in {"arch": nets.arch, "lineage_images": lineage_images, "resolution": res,
                           "full_resolution": res == ctx.dataset.resolution}.items():
            ctx.set_attr(key, value)
        ctx.save_state({"space": self.name, "arch": nets.arch, "lineage_images": lineage_images}, nets.tensors())
        return DGGANGenerator(nets.arch, nets.G_ema)
