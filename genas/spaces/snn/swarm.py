"""The swarm: particle-swarm velocities with Adam-style moments, inside a reverse-diffusion schedule.

One tensor per agent quantity, [A, C, H, W] on the device; an update touches the whole swarm at
once (no loop over agents). Each agent has a position (an image in [-1, 1]), a velocity, Adam's
first and second moments ``m``/``v`` of that velocity, and its personal best. Agents are split
into one sub-swarm per target (agent ``i`` serves target ``i mod K``); with one target image the
swarm is one swarm, as in the source.

One step at noise level ``beta`` (the source's schedule: ``linspace(beta_start, beta_end, T)``):

1. Predicted noise: ``eps = x - target``, exactly the source's. The source has no trained
   denoiser; its "predicted noise" is the residual to the target the swarm is given. With
   attention on, each pixel's residual is scaled by the agent's pixel weights (mean 1), so the
   pixels close to the target are emphasised.
2. Denoise: ``x - min(beta * eps_weight, 1) * eps``. The source divides this by ``1 - beta``,
   which with its ``eps`` adds ``beta / (1 - beta) * target`` every step and drives every pixel to
   +-1 (the clip hides it); genas drops that factor and never steps past the target.
3. PSO velocity: ``w * vel + c1 r1 (personal_best - x) + c2 r2 (sub_swarm_best - x)``, r1, r2 ~ U(0, 1)
   per pixel. Its Adam moments (decays 0.9 / 0.999, bias-corrected) give the move
   ``beta * m_hat / (sqrt(v_hat) + 1e-8)``: per-pixel steps normalised by their own history, and
   annealed with the noise schedule as a learning rate.
4. Add scaled noise ``noise_scale * sqrt(beta) * z`` (the source's is ``noise_scale = 1``) and clip
   to [-1, 1].
5. Fitness (lower is better): pixel MSE to the target + ``perceptual_weight`` x the multi-scale
   perceptual distance; personal and sub-swarm bests update.

The swarm's answer is its personal bests, ranked: sub-swarm leaders first, then second-best of
each sub-swarm, and so on, each rank ordered by fitness (with one target: simply by fitness).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Callable

import torch

from genas.spaces.snn.attention import multi_head_attention, pixel_weights
from genas.spaces.snn.perceptual import Perceptual

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass(frozen=True)
class SwarmConfig:
    agents: int = 64
    steps: int = 100  # T, the length of the noise schedule
    beta_start: float = 0.1  # the source's schedule: linspace(0.1, 0.002, T)
    beta_end: float = 0.002
    inertia: float = 0.7  # PSO's w
    c1: float = 1.5  # cognitive pull toward the agent's own best
    c2: float = 1.5  # social pull toward its sub-swarm's best
    attention: bool = True
    heads: int = 4
    noise_scale: float = 1.0
    perceptual_weight: float = 0.1  # 0 turns the perceptual term off
    scales: int = 2  # MobileNetV2 feature levels in the fitness
    chunk: int = 256  # agents per perceptual-network batch

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SwarmConfig":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown swarm settings {unknown}")
        return cls(**data)

    @property
    def uses_perceptual(self) -> bool:
        return self.perceptual_weight > 0


def noise_schedule(config: SwarmConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.linspace(config.beta_start, config.beta_end, config.steps, device=device)


class Fitness:
    """Pixel MSE + weighted perceptual distance of agents to their targets (lower is better)."""

    def __init__(self, targets: torch.Tensor, perceptual: Perceptual | None, weight: float, chunk: int) -> None:
        self.targets, self.perceptual, self.weight, self.chunk = targets, perceptual, weight, max(1, chunk)
        self.target_features = perceptual.features(targets) if perceptual is not None and weight > 0 else None

    def __call__(self, positions: torch.Tensor, assign: torch.Tensor | None) -> torch.Tensor:
        targets = self.targets if assign is None else self.targets[assign]
        fitness = (positions - targets).pow(2).flatten(1).mean(1)
        if self.target_features is None:
            return fitness
        parts = []
        for start in range(0, positions.shape[0], self.chunk):
            stop = min(start + self.chunk, positions.shape[0])
            feats = self.target_features if assign is None else [f[assign[start:stop]] for f in self.target_features]
            parts.append(self.perceptual.distance(positions[start:stop], feats))
        return fitness + self.weight * torch.cat(parts)


class Swarm:
    """A swarm on ``targets`` [K, C, H, W] (already on the device); ``run`` it for the whole schedule."""

    def __init__(self, config: SwarmConfig, targets: torch.Tensor, perceptual: Perceptual | None,
                 seed: int) -> None:
        self.config, self.targets = config, targets
        device = targets.device
        self.rng = torch.Generator(device=device).manual_seed(int(seed))
        k, shape = targets.shape[0], (config.agents, *targets.shape[1:])
        # one sub-swarm per target; with one target no index is needed (targets broadcast)
        self.assign = torch.arange(config.agents, device=device) % k if k > 1 else None
        self.n_groups = k
        self.fitness = Fitness(targets, perceptual if config.uses_perceptual else None,
                               config.perceptual_weight, config.chunk)
        self.position = torch.randn(shape, generator=self.rng, device=device).clamp_(-1, 1)
        self.velocity = torch.randn(shape, generator=self.rng, device=device)
        self.m = torch.zeros(shape, device=device)
        self.v = torch.zeros(shape, device=device)
        self.best = self.position.clone()
        self.best_fitness = self.fitness(self.position, self.assign)
        self.schedule = noise_schedule(config, device)
        self.t = 0

    # ------------------------------------------------------------ bests
    def leaders(self) -> torch.Tensor:
        """Index of each sub-swarm's best agent: [K] (lowest index among ties)."""
        if self.assign is None:
            return self.best_fitness.argmin().view(1)
        k, f = self.n_groups, self.best_fitness
        lowest = torch.full((k,), float("inf"), device=f.device).scatter_reduce(0, self.assign, f, "amin")
        index = torch.arange(f.shape[0], device=f.device)
        candidates = torch.where(f == lowest[self.assign], index, f.shape[0])
        return torch.full((k,), f.shape[0], device=f.device).scatter_reduce(0, self.assign, candidates, "amin")

    def targets_of_agents(self) -> torch.Tensor:
        return self.targets if self.assign is None else self.targets[self.assign]

    def ranking(self) -> torch.Tensor:
        """All agents, best first: by rank inside their sub-swarm, then by fitness."""
        by_fitness = torch.argsort(self.best_fitness, stable=True)
        if self.assign is None:
            return by_fitness
        group = self.assign[by_fitness]
        grouped = torch.argsort(group, stable=True)  # by group, fitness order inside
        starts = torch.cumsum(torch.bincount(group, minlength=self.n_groups), 0) - torch.bincount(group, minlength=self.n_groups)
        rank = torch.empty_like(group)
        rank[grouped] = torch.arange(group.shape[0], device=group.device) - starts[group[grouped]]
        return by_fitness[torch.argsort(rank, stable=True)]

    # ------------------------------------------------------------ one step
    @torch.no_grad()
    def step(self) -> None:
        c, x = self.config, self.position
        beta = self.schedule[self.t]
        self.t += 1
        targets = self.targets_of_agents()

        # reverse diffusion: the source's predicted noise, attention-weighted, denoised without overshoot
        noise = x - targets
        rate = beta.expand(x.shape[0], 1, *x.shape[2:])
        if c.attention:
            rate = rate * pixel_weights(multi_head_attention(x, targets, c.heads))
        denoised = x - rate.clamp(max=1.0) * noise

        # particle swarm: inertia, pull to the agent's own best and to its sub-swarm's best
        leaders = self.best[self.leaders()]
        social = leaders if self.assign is None else leaders[self.assign]
        r1 = torch.rand(x.shape, generator=self.rng, device=x.device)
        r2 = torch.rand(x.shape, generator=self.rng, device=x.device)
        self.velocity.mul_(c.inertia).add_(c.c1 * r1 * (self.best - x)).add_(c.c2 * r2 * (social - x))

        # Adam-style moments of the velocity: a per-pixel normalised move, annealed with the schedule
        b1, b2 = ADAM_BETAS
        self.m.lerp_(self.velocity, 1 - b1)
        self.v.lerp_(self.velocity.square(), 1 - b2)
        m_hat = self.m / (1 - b1 ** self.t)
        v_hat = self.v / (1 - b2 ** self.t)
        move = beta * m_hat / (v_hat.sqrt() + ADAM_EPS)

        z = torch.randn(x.shape, generator=self.rng, device=x.device)
        self.position = (denoised + move + c.noise_scale * beta.sqrt() * z).clamp_(-1, 1)

        fitness = self.fitness(self.position, self.assign)
        better = fitness < self.best_fitness
        self.best = torch.where(better.view(-1, 1, 1, 1), self.position, self.best)
        self.best_fitness = torch.where(better, fitness, self.best_fitness)

    def run(self, on_step: Callable[["Swarm"], None] | None = None) -> "Swarm":
        """Every remaining step of the schedule; ``on_step(self)`` after each."""
        while self.t < self.config.steps:
            self.step()
            if on_step is not None:
                on_step(self)
        return self
