"""The ``snn`` space: swarm neural network (particle swarm + reverse diffusion), hyperparameters by TPE.

A trial runs one swarm (swarm.py) on the targets for its whole noise schedule and hands back the
generator (its settings + targets). Targets: with an ``image:NAME|PATH`` dataset (one image), the
whole swarm reconstructs that image; with a dataset, ``agents // agents_per_target`` images drawn
from it by the trial seed each get a sub-swarm, and the population is scored with SWD/FID.

Metrics (own, lower is better), on each target's best agent, averaged over targets:
``mse`` (pixel MSE in [-1, 1] units, the source's measure), ``perceptual_mnv2rand`` (the fixed
random-weight MobileNetV2, always logged) and ``perceptual_mnv2`` (real ImageNet weights, only with
``--set perceptual_weights=PATH``). The metric's network is fixed (4 levels at 64x64) whatever the
trial's fitness uses, so trials compare. ``swd`` is logged with a dataset.

Intermediate reports: ``<metric>_quick`` (and ``swd_quick`` with a dataset) at ``reports`` evenly
spaced points of the schedule. The step axis is swarm steps on the budget's reference schedule of
``images_per_trial`` steps: a trial with another T reports at the same fractions of its schedule,
so the pruner compares trials at the same point of their annealing.

Budgets: ``tiny`` = seconds on a CPU (16-32 agents, 12-24 steps); ``small`` = the README demo on a
2-core CPU; ``full`` = the source's scale on a GPU (1,000 agents, T = 1,000, 64x64 perceptual input).
"""
from __future__ import annotations

import math

import torch

from genas.data import Dataset, to_uint8
from genas.errors import GenasError, TrainingDiverged
from genas.spaces.base import Space, TrialContext, register_space
from genas.spaces.snn.generator import SNNGenerator, SwarmResult
from genas.spaces.snn.perceptual import (OPTION, RANDOM_METRIC, WEIGHTS_METRIC, Perceptual, feature_network, load_into,
                                        read_weights)
from genas.spaces.snn.swarm import Swarm, SwarmConfig

METRIC_LEVELS = 4
METRIC_RESOLUTION = 64

BUDGETS = {
    "tiny": {"images_per_trial": 24, "batch_size": 64, "eval_samples": 32, "quick_eval_samples": 16, "reports": 2,
             "trials": 4, "agents": (16, 32), "steps": (12, 24), "agents_per_target": 4, "perceptual_resolution": 32,
             "max_scales": 2},
    "small": {"images_per_trial": 100, "batch_size": 256, "eval_samples": 256, "quick_eval_samples": 128,
              "reports": 4, "trials": 16, "agents": (64, 128), "steps": (50, 100), "agents_per_target": 4,
              "perceptual_resolution": 32, "max_scales": 3},
    "full": {"images_per_trial": 1000, "batch_size": 500, "eval_samples": 2000, "quick_eval_samples": 500,
             "reports": 10, "trials": 100, "agents": (250, 500, 1000), "steps": (250, 500, 1000),
             "agents_per_target": 8, "perceptual_resolution": 64, "max_scales": 4},
}


def pick_targets(dataset: Dataset, count: int, seed: int) -> torch.Tensor:
    """``count`` dataset images drawn without replacement by ``seed`` (all of them when fewer)."""
    if len(dataset) <= count:
        return dataset.images.clone()
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(int(seed)))[:count]
    return dataset.images[order.sort().values].clone()


def metric_networks(options: dict) -> dict[str, Perceptual]:
    """The fixed networks the metrics use: always the random one, the real one when its file is set."""
    nets = {RANDOM_METRIC: Perceptual.random(METRIC_LEVELS, METRIC_RESOLUTION)}
    if options.get(OPTION):
        nets[WEIGHTS_METRIC] = Perceptual.from_file(options[OPTION], METRIC_LEVELS, METRIC_RESOLUTION)
    return nets


def distances(result: SwarmResult, nets: dict[str, Perceptual], device: torch.device) -> dict[str, float]:
    """MSE and perceptual distances of each target's best agent to its target, averaged over targets."""
    leaders, targets = result.leaders.to(device), result.targets.to(device)
    out = {"mse": (leaders - targets).pow(2).flatten(1).mean(1).mean().item()}
    for name, net in nets.items():
        net = net.to(device)
        out[name] = net.distance(leaders, net.features(targets)).mean().item()
    return out


@register_space
class SNNSpace(Space):
    """Swarm neural network (PSO inside a reverse-diffusion schedule) that reconstructs target images."""

    name = "snn"
    generator_cls = SNNGenerator
    default_sampler = "tpe"
    default_pruner = "median"
    own_metrics = {"mse": "minimize", RANDOM_METRIC: "minimize", WEIGHTS_METRIC: "minimize"}
    default_objectives = ("mse",)
    options = {OPTION: ""}  # a local mobilenetv2_100 state dict; empty: the fixed random-weight network
    budgets = BUDGETS

    def check(self, dataset: Dataset, options: dict, *, budget: str | None = None,
              objectives: tuple[str, ...] = ()) -> None:
        if WEIGHTS_METRIC in objectives and not options.get(OPTION):
            raise GenasError(f"objective {WEIGHTS_METRIC} needs real MobileNetV2 weights: pass --set {OPTION}=PATH, "
                             f"or use --objective {RANDOM_METRIC} (the fixed random-weight network)")
        if dataset.channels not in (1, 3):
            raise GenasError(f"snn needs 1- or 3-channel images, dataset {dataset.name} has {dataset.channels}")
        if options.get(OPTION):  # unreadable file or another architecture: fail before the study starts
            load_into(feature_network(METRIC_LEVELS), read_weights(options[OPTION]), f"option {OPTION}={options[OPTION]}")

    def final_metrics(self, objectives: tuple[str, ...], dataset: Dataset) -> list[str]:
        base = ["mse", RANDOM_METRIC] + (["swd"] if len(dataset) > 1 else [])
        return list(dict.fromkeys(base + list(objectives)))

    def suggest(self, trial, ctx: TrialContext) -> dict:
        b = self.budget(ctx.budget)
        return {"agents": trial.suggest_categorical("agents", b["agents"]),
                "steps": trial.suggest_categorical("steps", b["steps"]),
                "beta_start": trial.suggest_float("beta_start", 0.02, 0.3, log=True),
                "beta_end": trial.suggest_float("beta_end", 1e-4, 1e-2, log=True),
                "inertia": trial.suggest_float("inertia", 0.3, 0.95),
                "c1": trial.suggest_float("c1", 0.2, 2.5),
                "c2": trial.suggest_float("c2", 0.2, 2.5),
                "attention": trial.suggest_categorical("attention", (True, False)),
                "heads": trial.suggest_int("heads", 1, 8),
                "noise_scale": trial.suggest_float("noise_scale", 0.05, 1.0, log=True),
                "perceptual": trial.suggest_categorical("perceptual", (True, False)),
                "perceptual_weight": trial.suggest_float("perceptual_weight", 0.01, 1.0, log=True),
                "scales": trial.suggest_int("scales", 1, b["max_scales"])}

    def swarm_config(self, config: dict, budget: str) -> SwarmConfig:
        return SwarmConfig(agents=int(config["agents"]), steps=int(config["steps"]),
                           beta_start=float(config["beta_start"]), beta_end=float(config["beta_end"]),
                           inertia=float(config["inertia"]), c1=float(config["c1"]), c2=float(config["c2"]),
                           attention=bool(config["attention"]), heads=int(config["heads"]),
                           noise_scale=float(config["noise_scale"]),
                           perceptual_weight=float(config["perceptual_weight"]) if config["perceptual"] else 0.0,
                           scales=int(config["scales"]), chunk=self.budget(budget)["batch_size"])

    def train(self, config: dict, ctx: TrialContext) -> SNNGenerator:
        b = self.budget(ctx.budget)
        torch.manual_seed(ctx.seed)
        objectives = ctx.trial.study.metric_names if ctx.trial is not None else None
        if objectives and WEIGHTS_METRIC in objectives and not ctx.options.get(OPTION):
            raise GenasError(f"objective {WEIGHTS_METRIC} needs real weights: --set {OPTION}=PATH; "
                             f"or use {RANDOM_METRIC}")
        swarm_config = self.swarm_config(config, ctx.budget)
        one_image = len(ctx.dataset) == 1
        count = 1 if one_image else max(1, swarm_config.agents // b["agents_per_target"])
        targets = pick_targets(ctx.dataset, count, ctx.seed)
        weights_file = ctx.options.get(OPTION)
        weights = None
        if weights_file and swarm_config.uses_perceptual:
            weights = Perceptual.from_file(weights_file, swarm_config.scales, b["perceptual_resolution"]).weights()
        generator = SNNGenerator(swarm_config, targets, {"kind": "weights" if weights_file else "random",
                                                        "resolution": b["perceptual_resolution"]},
                                 weights, ctx.device)
        ctx.set_attr("modules", {"attention": swarm_config.attention, "perceptual": swarm_config.uses_perceptual,
                                 "targets": count, "perceptual_net": "mnv2" if weights_file else "mnv2rand"})
        nets = metric_networks(ctx.options)
        steps = swarm_config.steps
        report_at = {max(1, round(steps * (i + 1) / b["reports"])) for i in range(b["reports"])}

        def on_step(swarm: Swarm) -> None:
            ctx.advance(swarm.t, steps)
            if swarm.t in report_at:  # checked here only: a check every step would sync the GPU every step
                if not bool(torch.isfinite(swarm.best_fitness).all()):
                    raise TrainingDiverged(f"snn fitness is not finite at step {swarm.t}; lower perceptual_weight "
                                           "or check the target images")
                result = SwarmResult.of(swarm)
                metrics = {f"{k}_quick": v for k, v in distances(result, nets, ctx.device).items()}
                metrics["fitness"] = swarm.best_fitness.mean().item()
                if not one_image:
                    metrics.update(ctx.quick_eval(Snapshot(result)))
                ctx.report(round(b["images_per_trial"] * swarm.t / steps), metrics)

        generator.run(ctx.seed, 0, on_step)
        return generator

    def score(self, generator: SNNGenerator, names: list[str], ctx: TrialContext) -> dict[str, float]:
        if WEIGHTS_METRIC in names and not ctx.options.get(OPTION):
            raise GenasError(f"{WEIGHTS_METRIC} needs real weights: --set {OPTION}=PATH; or use {RANDOM_METRIC}")
        result = generator.run(ctx.seed, 0)  # the training run, kept by the generator
        scores = distances(result, metric_networks(ctx.options), ctx.device)
        if not all(math.isfinite(v) for v in scores.values()):
            raise TrainingDiverged(f"snn scores are not finite ({scores}); lower perceptual_weight")
        return scores


class Snapshot:
    """The swarm as it stands, as an image generator for ``ctx.quick_eval`` (best agents first)."""

    def __init__(self, result: SwarmResult) -> None:
        self.result = result

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        ranked = self.result.ranked
        index = torch.arange(n) % ranked.shape[0]
        return to_uint8(ranked[index])
