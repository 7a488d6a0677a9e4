"""BALANCE, the DQN balancer (source section III-D): a referee that sets the learning rate and the decay rate.

The source's loop (its Fig. 5): G generates images, D evaluates them and the reward is computed
from that evaluation; the DQN takes "the current state (generator output and discriminator
score)" and picks an action; the transition goes to an experience-replay pool from which it
learns on random minibatches. After the initial learning rate and EMA decay, "our balancer will
automatically adjust" them: the actions are the learning rate and the decay rate.

- State (:func:`balance_state`, :data:`STATE_DIM` numbers): D's mean probability on the last
  interval's real and fake batches (the training batches), D's probability on a probe batch of
  the EMA generator's images (fixed latents), two small statistics of that probe batch (its
  per-pixel spread across samples relative to the reals', a collapse signal; its mean intensity
  minus the reals'), the last reward's improvement signal, the two knobs the balancer sets (log
  scale) and the trial's progress.
- Actions: two heads of three levels (:data:`HEAD_ACTIONS`, low / mid / high; :data:`LEVELS`),
  each setting its knob for the next interval (levels, not steps: a step per decision turns
  epsilon-greedy exploration into a random walk of the knob): the learning rate (both G's and
  D's multiplier x0.5, x1 or x2) and the decay rate, read two ways (the ``balance_decay_ema``
  switch): ``True`` (the default; the source names "the learning rate of 0.1 and the exponential
  movement of the decayed model weight of 0.9999" in the same sentence as what the balancer
  then adjusts) the EMA generator's effective half-life x0.25, x1 or x4 (its ramp-up included,
  or a short trial would never see the knob); ``False``: the learning-rate decay of eq. 8/9, a
  StepLR factor at every decision that, held for a whole trial, would take the rate down by
  x1 (none), x1/2 or x1/8 (the product stops at :data:`DECAY_FLOOR`).
- Reward (:func:`balance_reward`): "the discriminator evaluates the generated image and
  calculates the reward": the current D scores the EMA generator's probe images now and the
  ones it made at the previous decision (same latents); the improvement ``mean logit(now) -
  mean logit(before)`` under one D (so a weaker D does not pay), divided by its running RMS and
  squashed by tanh. ``reward_mix`` blends it with the balance gain (the drop of
  ``|D(real) - D(fake)|``, also D's evaluation); trial 0 uses the improvement alone.
- Learning: a branching Q-network (one MLP trunk, a Q-value head per action dimension, each
  trained towards ``r + gamma * max Q_head(s')`` of a target network, Tavakoli et al. 2018: with
  two heads of three each action is tried far more often than in a joint table of nine),
  epsilon-greedy per head, decaying linearly from ``eps_start`` to ``eps_end`` over ``eps_decay``
  decisions, a replay pool sampled uniformly, ``updates_per_decision`` Huber TD updates per
  decision. The heads start near zero with a small preference for the middle level: until it has
  learned otherwise the greedy balancer holds the knobs where a fixed schedule has them, not at
  an arbitrary level. It runs on the CPU whatever the trainer's device (it is tiny).
- Warm start: at the end of a trial the Q-network and the last transitions are kept
  (:meth:`DQNBalancer.payload`, stored as the Optuna user attr ``balancer_q`` by train.py); the
  next trial with the balancer on starts from those of the best complete trial so far (the
  study's champion), so the decisions of a whole study train one referee.
"""
from __future__ import annotations

import base64
import copy
import math
import random
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HEAD_ACTIONS: dict[str, tuple[str, ...]] = {"lr": ("low", "mid", "high"), "decay": ("low", "mid", "high")}
HEADS = tuple(HEAD_ACTIONS)
#: the level each action sets: the learning-rate multiplier; the EMA half-life multiplier (EMA
#: reading); the log of the learning rate's decay over a whole trial if the level were held (lr reading)
LEVELS = {"lr": (0.5, 1.0, 2.0), "ema": (0.25, 1.0, 4.0), "lr_decay": (0.0, math.log(2), math.log(8))}
DECAY_FLOOR = 1 / 32
STATE_DIM = 10
PAYLOAD_MEMORY = 256
MID_PRIOR = 0.05  # the untrained Q-network's preference for the middle level  # transitions handed to the next trial


def balance_state(p_real: float, p_fake: float, p_probe: float, spread_ratio: float, mean_shift: float,
                  improvement: float, knobs: tuple[float, float], progress: float) -> list[float]:
    """The DQN's input: D's scores, the probe images' statistics, the knobs in force (:meth:`Knobs.features`)."""
    return [p_real, p_fake, p_probe, p_real - p_fake, min(spread_ratio, 2.0), max(-1.0, min(mean_shift, 1.0)),
            improvement, *knobs, progress]


def balance_reward(improvement: float, gap_prev: float, gap: float, mix: float) -> float:
    """``mix * improvement + (1 - mix) * balance gain``; ``improvement`` is already in [-1, 1]."""
    balance_gain = max(-1.0, min(5.0 * (abs(gap_prev) - abs(gap)), 1.0))
    return mix * improvement + (1.0 - mix) * balance_gain


class BranchingQ(nn.Module):
    """An MLP trunk with one Q-value head per action dimension."""

    def __init__(self, state_dim: int, branches: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in branches)

    def forward(self, s: torch.Tensor) -> list[torch.Tensor]:
        h = self.trunk(s)
        return [head(h) for head in self.heads]


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _decode(text: str, dtype) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).copy()


class DQNBalancer:
    """Epsilon-greedy branching DQN with replay and a target network; ``act`` returns one index per head."""

    def __init__(self, state_dim: int = STATE_DIM, branches: tuple[int, ...] = (3, 3), eps_start: float = 1.0,
                 eps_end: float = 0.05, eps_decay: int = 100, gamma: float = 0.9, lr: float = 1e-3,
                 hidden: int = 32, capacity: int = 4000, batch: int = 16, target_sync: int = 50,
                 updates_per_decision: int = 2, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.q = BranchingQ(state_dim, branches, hidden)
        with torch.no_grad():  # own RNG: the balancer must not shift the GAN's random stream
            for p in self.q.parameters():
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) / math.sqrt(p.shape[-1]))
            for head in self.q.heads:  # untrained, the greedy action is the middle level: a fixed schedule
                head.weight.mul_(0.01)
                head.bias.zero_()
                head.bias[head.bias.shape[0] // 2] = MID_PRIOR
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.opt = torch.optim.Adam(self.q.parameters(), lr=lr)
        self.memory: deque = deque(maxlen=capacity)
        self.rng = random.Random(seed)
        self.state_dim, self.branches = state_dim, tuple(branches)
        self.gamma, self.batch, self.target_sync = gamma, batch, target_sync
        self.updates_per_decision = updates_per_decision
        self.eps_start, self.eps_end, self.eps_decay = eps_start, eps_end, max(eps_decay, 1)
        self.decisions, self.updates = 0, 0
        self.counts: list[Counter] = [Counter() for _ in branches]
        self.warm_from: int | None = None
        self.rewards: list[float] = []

    @property
    def epsilon(self) -> float:
        frac = min(self.decisions / self.eps_decay, 1.0)
        return self.eps_start + (self.eps_end - self.eps_start) * frac

    def greedy(self, state: list[float]) -> tuple[int, ...]:
        with torch.no_grad():
            return tuple(int(q.argmax(dim=1)) for q in self.q(torch.tensor([state], dtype=torch.float32)))

    def act(self, state: list[float]) -> tuple[int, ...]:
        """Epsilon-greedy action for ``state``, each head exploring on its own."""
        best = self.greedy(state)
        action = tuple(self.rng.randrange(n) if self.rng.random() < self.epsilon else a
                       for n, a in zip(self.branches, best))
        self.decisions += 1
        for counts, a in zip(self.counts, action):
            counts[a] += 1
        return action

    def observe(self, state: list[float], action: tuple[int, ...], reward: float,
                next_state: list[float]) -> float | None:
        """Store one transition and learn from replayed minibatches; returns the last TD loss once learning."""
        self.memory.append((state, tuple(action), float(reward), next_state))
        self.rewards.append(float(reward))
        loss = None
        if len(self.memory) >= self.batch:
            for _ in range(self.updates_per_decision):
                loss = self._learn()
        return loss

    def _learn(self) -> float:
        s, a, r, s2 = zip(*self.rng.sample(list(self.memory), self.batch))
        s, s2 = torch.tensor(s, dtype=torch.float32), torch.tensor(s2, dtype=torch.float32)
        a, r = torch.tensor(a), torch.tensor(r, dtype=torch.float32)
        with torch.no_grad():
            targets = [r + self.gamma * q.max(dim=1).values for q in self.target(s2)]
        loss = sum(F.smooth_l1_loss(q.gather(1, a[:, i, None]).squeeze(1), t)
                   for i, (q, t) in enumerate(zip(self.q(s), targets)))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.updates += 1
        if self.updates % self.target_sync == 0:
            self.target.load_state_dict(self.q.state_dict())
        return float(loss.detach())

    # ------------------------------------------------------------ across trials
    def payload(self) -> dict:
        """The Q-network and the last transitions, JSON-able (for the next trial's warm start)."""
        flat = torch.cat([p.detach().flatten() for p in self.q.parameters()]).numpy().astype(np.float32)
        recent = list(self.memory)[-PAYLOAD_MEMORY:]
        rows = np.array([[*s, *a, r, *s2] for s, a, r, s2 in recent], dtype=np.float32).reshape(len(recent), -1)
        return {"state_dim": self.state_dim, "branches": list(self.branches), "q": _encode(flat),
                "memory": _encode(rows), "memory_rows": len(recent)}

    def load_payload(self, payload: dict, source_trial: int | None = None) -> bool:
        """Start from another trial's Q-network and transitions; False (and untouched) when they do not fit."""
        if payload.get("state_dim") != self.state_dim or tuple(payload.get("branches", ())) != self.branches:
            return False
        flat = torch.from_numpy(_decode(payload["q"], np.float32))
        if flat.numel() != sum(p.numel() for p in self.q.parameters()):
            return False
        with torch.no_grad():
            offset = 0
            for p in self.q.parameters():
                p.copy_(flat[offset:offset + p.numel()].view_as(p))
                offset += p.numel()
        self.target.load_state_dict(self.q.state_dict())
        n_heads, width = len(self.branches), 2 * self.state_dim + len(self.branches) + 1
        rows = _decode(payload["memory"], np.float32).reshape(int(payload["memory_rows"]), width)
        for row in rows.tolist():
            s, a = row[:self.state_dim], tuple(int(v) for v in row[self.state_dim:self.state_dim + n_heads])
            self.memory.append((s, a, row[self.state_dim + n_heads], row[self.state_dim + n_heads + 1:]))
        self.warm_from = source_trial
        return True

    def histogram(self) -> dict[str, dict[str, int]]:
        """Action counts per head, by name (``{"lr": {"lower": 3, "keep": 5, "raise": 1}, "decay": ...}``)."""
        named = self.branches == tuple(len(v) for v in HEAD_ACTIONS.values())
        names = HEADS if named else tuple(str(i) for i in range(len(self.branches)))
        return {name: {(HEAD_ACTIONS[name][a] if named else str(a)): counts[a] for a in range(n)}
                for name, n, counts in zip(names, self.branches, self.counts)}

    def fractions(self) -> dict[str, float]:
        """The histogram as fractions of the decisions, flat (MLflow metrics ``balancer_<head>_<action>``)."""
        total = max(self.decisions, 1)
        return {f"balancer_{head}_{name}": n / total for head, counts in self.histogram().items()
                for name, n in counts.items()}

    def summary(self) -> dict:
        """The action histogram per head, decisions, updates, epsilon, mean reward and the warm start's source."""
        return {"actions": self.histogram(), "decisions": self.decisions, "updates": self.updates,
                "epsilon": round(self.epsilon, 4), "warm_from": self.warm_from,
                "mean_reward": round(sum(self.rewards) / len(self.rewards), 4) if self.rewards else None}


@dataclass
class Knobs:
    """What the balancer sets: the learning-rate level and the decay-rate level (of the EMA, or of the lr)."""

    decay_ema: bool = True
    decisions: int = 100  # the trial's planned decisions (the lr reading's decay per decision)
    lr_level: int = 1
    decay_level: int = 1
    decayed: float = 1.0  # the product of the StepLR factors so far (lr reading)

    def apply(self, action: tuple[int, ...]) -> None:
        """Set both levels; under the lr reading, take this decision's StepLR factor at the new decay level."""
        self.lr_level, self.decay_level = action
        if not self.decay_ema:
            factor = math.exp(-LEVELS["lr_decay"][self.decay_level] / max(self.decisions, 1))
            self.decayed = max(self.decayed * factor, DECAY_FLOOR)

    @property
    def lr_mult(self) -> float:
        return LEVELS["lr"][self.lr_level] * self.decayed

    @property
    def ema(self) -> float:
        """The multiplier of the EMA's effective half-life (1 under the lr reading)."""
        return LEVELS["ema"][self.decay_level] if self.decay_ema else 1.0

    def features(self) -> tuple[float, float]:
        """The knobs as the state shows them: log2 of the lr multiplier / 5, the decay level in -1, 0, 1."""
        return math.log2(self.lr_mult) / 5, float(self.decay_level - 1)

    def summary(self) -> dict:
        out = {"lr_mult": round(self.lr_mult, 4)}
        if self.decay_ema:
            out["ema_half_life_mult"] = self.ema
        else:
            out["decayed"] = round(self.decayed, 4)
        return out
