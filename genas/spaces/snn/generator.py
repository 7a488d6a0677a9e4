"""The trained snn generator: the swarm's settings and targets; sampling re-runs the swarm from a seed.

A swarm has nothing to learn that outlives it: its "model" is the targets, the hyperparameters
and the perceptual network of its fitness. ``sample(n, seed)`` runs ``ceil(n / agents)`` swarms
(run ``r`` seeded from ``(seed, r)``) and returns the ``n`` best personal bests, ranked as
:meth:`Swarm.ranking` says. The state is self-contained: the random-weight perceptual network is
rebuilt from its fixed seed; real MobileNetV2 weights (``--set perceptual_weights=PATH``) travel
inside the state as tensors, so a registered champion samples without the user's file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from genas.data import to_uint8
from genas.errors import GenasError
from genas.spaces.generators import check_space
from genas.spaces.snn.perceptual import Perceptual
from genas.spaces.snn.swarm import Swarm, SwarmConfig

WEIGHTS_PREFIX = "perceptual."


def run_seed(seed: int, run: int) -> int:
    """Run ``run``'s seed within ``sample(n, seed)``: distinct per run, run 0 is the training run."""
    return (int(seed) * 1_000_003 + run) % (2**63 - 1)


@dataclass
class SwarmResult:
    """A finished swarm, on the CPU: personal bests in rank order, their fitness, and the leaders."""

    ranked: torch.Tensor  # [A, C, H, W] personal bests, best first
    ranked_fitness: torch.Tensor  # [A]
    ranked_rank: torch.Tensor  # [A] rank inside the agent's sub-swarm (0: leader)
    leaders: torch.Tensor  # [K, C, H, W] each target's best agent
    targets: torch.Tensor  # [K, C, H, W]

    @classmethod
    def of(cls, swarm: Swarm) -> "SwarmResult":
        order = swarm.ranking()
        rank = torch.zeros_like(order)
        if swarm.assign is not None:  # position inside the agent's sub-swarm, in ranking order
            rank = torch.div(torch.arange(order.shape[0], device=order.device), swarm.n_groups, rounding_mode="floor")
        return cls(swarm.best[order].cpu(), swarm.best_fitness[order].cpu(), rank.cpu(),
                   swarm.best[swarm.leaders()].cpu(), swarm.targets.cpu())


class SNNGenerator:
    """Samples ``uint8 [n, C, H, W]``: the best agents of swarms run from the seed on the targets."""

    space_name = "snn"

    def __init__(self, config: SwarmConfig, targets: torch.Tensor, perceptual: dict,
                 weights: dict[str, torch.Tensor] | None = None, device: torch.device | str = "cpu") -> None:
        self.config, self.targets = config, targets.float().cpu()
        self.perceptual = dict(perceptual)  # {"kind": "random"|"weights", "resolution": R}
        self.weights, self.device = weights, torch.device(device)
        self._net: Perceptual | None = None
        self._runs: dict[tuple[int, int], SwarmResult] = {}  # the last sample's runs, reused by the next

    # ------------------------------------------------------------ running
    def perceptual_net(self) -> Perceptual | None:
        if not self.config.uses_perceptual:
            return None
        if self._net is None:
            levels, res = self.config.scales, int(self.perceptual["resolution"])
            net = (Perceptual.from_tensors(self.weights, levels, res) if self.perceptual["kind"] == "weights"
                   else Perceptual.random(levels, res))
            self._net = net.to(self.device)
        return self._net

    def swarm(self, seed: int) -> Swarm:
        return Swarm(self.config, self.targets.to(self.device), self.perceptual_net(), seed)

    def run(self, seed: int, run: int = 0, on_step: Callable[[Swarm], None] | None = None) -> SwarmResult:
        """Run (or reuse) swarm ``run`` of ``sample(n, seed)``; ``on_step`` watches a fresh run."""
        key = (int(seed), run)
        if key not in self._runs:
            self._runs[key] = SwarmResult.of(self.swarm(run_seed(seed, run)).run(on_step))
        return self._runs[key]

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        seed = int(seed) if seed is not None else int(torch.seed()) % (2**62)
        runs = [self.run(seed, r) for r in range(math.ceil(n / self.config.agents))]
        self._runs = {(seed, r): result for r, result in enumerate(runs)}
        if not runs:
            return torch.zeros(0, *self.targets.shape[1:], dtype=torch.uint8)
        images = torch.cat([r.ranked for r in runs])
        # the n best over all runs: by rank in the sub-swarm, then fitness (stable: earlier runs first)
        order = torch.argsort(torch.cat([r.ranked_fitness for r in runs]), stable=True)
        rank = torch.cat([r.ranked_rank for r in runs])[order]
        order = order[torch.argsort(rank, stable=True)][:n]
        return to_uint8(images[order])

    # ------------------------------------------------------------ state
    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        config = {"space": self.space_name, "swarm": self.config.to_dict(), "perceptual": self.perceptual,
                  "shape": list(self.targets.shape[1:]), "targets": self.targets.shape[0]}
        tensors = {"targets": self.targets.contiguous()}
        if self.perceptual["kind"] == "weights" and self.weights is not None:
            tensors.update({WEIGHTS_PREFIX + k: v for k, v in self.weights.items()})
        return config, tensors

    @classmethod
    def from_state(cls, config: dict, tensors: dict[str, torch.Tensor]) -> "SNNGenerator":
        check_space(config, cls.space_name)
        try:
            swarm = SwarmConfig.from_dict(dict(config["swarm"]))
            perceptual = dict(config["perceptual"])
            kind, shape = perceptual["kind"], list(config["shape"])
            int(perceptual["resolution"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GenasError(f"the snn checkpoint config is incomplete or malformed ({exc}); "
                             "re-export it from its trial") from None
        targets = tensors.get("targets")
        if targets is None or targets.dim() != 4 or list(targets.shape[1:]) != shape or kind not in ("random", "weights"):
            got = None if targets is None else tuple(targets.shape)
            raise GenasError(f"the snn checkpoint does not match its config (targets {got}, expected [K, {shape}], "
                             f"perceptual kind {kind!r}); re-export it from its trial")
        weights = {k[len(WEIGHTS_PREFIX):]: v for k, v in tensors.items() if k.startswith(WEIGHTS_PREFIX)}
        if kind == "weights" and swarm.uses_perceptual and not weights:
            raise GenasError("the snn checkpoint uses real MobileNetV2 weights but holds none; "
                             "re-export it from its trial")
        generator = cls(swarm, targets, perceptual, weights or None)
        if kind == "weights" and swarm.uses_perceptual:
            generator.perceptual_net()  # a mismatch fails here, with load_into's one-line message
        return generator
