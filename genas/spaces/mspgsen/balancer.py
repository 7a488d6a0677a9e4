"""BALANCE, the DQN balancer (source section III-D): a referee that sets the G/D interplay.

Every ``interval`` generator steps the trainer hands the balancer the state of the game and
applies the action it picks until the next decision:

- state (:func:`balance_state`): recent mean D(real) and D(fake) (probabilities), their gap,
  squashed D and G losses, the quality proxy relative to its first value and its last change,
  and the action in force (one-hot);
- actions (:data:`ACTIONS`): absolute settings of D steps per G step and of G's and D's
  learning-rate multipliers;
- reward (:func:`balance_reward`): ``mix * quality gain + (1 - mix) * balance gain``, the
  quality gain being the relative drop of the proxy, the balance gain the drop of
  ``|D(real) - D(fake)|``, each clipped to [-1, 1];
- learning: a small MLP Q-network, epsilon-greedy exploration decaying linearly from
  ``eps_start`` to ``eps_end`` over ``eps_decay`` decisions, an experience replay buffer
  sampled uniformly, Huber TD loss against a target network synced every ``target_sync``
  updates. It runs on the CPU whatever the trainer's device (it is tiny).
"""
from __future__ import annotations

import copy
import math
import random
from collections import Counter, deque

import torch
import torch.nn.functional as F
from torch import nn

ACTIONS: tuple[dict, ...] = (
    {"name": "steady", "n_critic": 1, "lr_g": 1.0, "lr_d": 1.0},
    {"name": "d_twice", "n_critic": 2, "lr_g": 1.0, "lr_d": 1.0},
    {"name": "slow_d", "n_critic": 1, "lr_g": 1.0, "lr_d": 0.5},
    {"name": "slow_g", "n_critic": 1, "lr_g": 0.5, "lr_d": 1.0},
    {"name": "slow_both", "n_critic": 1, "lr_g": 0.5, "lr_d": 0.5},
)
STATE_DIM = 7 + len(ACTIONS)


def balance_state(p_real: float, p_fake: float, loss_d: float, loss_g: float, quality: float,
                  quality_ref: float, quality_prev: float, action: int) -> list[float]:
    ref = max(quality_ref, 1e-6)
    onehot = [0.0] * len(ACTIONS)
    onehot[action] = 1.0
    return [p_real, p_fake, p_real - p_fake, math.tanh(loss_d / 2), math.tanh(loss_g / 2),
            min(quality / ref, 3.0), max(-1.0, min((quality_prev - quality) / ref, 1.0)), *onehot]


def balance_reward(quality_prev: float, quality: float, quality_ref: float, gap_prev: float, gap: float,
                   mix: float) -> float:
    quality_gain = max(-1.0, min(10.0 * (quality_prev - quality) / max(quality_ref, 1e-6), 1.0))
    balance_gain = max(-1.0, min(5.0 * (abs(gap_prev) - abs(gap)), 1.0))
    return mix * quality_gain + (1.0 - mix) * balance_gain


class DQNBalancer:
    def __init__(self, state_dim: int = STATE_DIM, n_actions: int = len(ACTIONS), eps_start: float = 1.0,
                 eps_end: float = 0.05, eps_decay: int = 100, gamma: float = 0.9, lr: float = 1e-3,
                 hidden: int = 32, capacity: int = 2000, batch: int = 32, target_sync: int = 25,
                 seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.q = nn.Sequential(nn.Linear(state_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                               nn.Linear(hidden, n_actions))
        with torch.no_grad():  # own RNG: the balancer must not shift the GAN's random stream
            for p in self.q.parameters():
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) / math.sqrt(p.shape[-1]))
        self.target = copy.deepcopy(self.q).requires_grad_(False)
        self.opt = torch.optim.Adam(self.q.parameters(), lr=lr)
        self.memory: deque = deque(maxlen=capacity)
        self.rng = random.Random(seed)
        self.n_actions, self.gamma, self.batch, self.target_sync = n_actions, gamma, batch, target_sync
        self.eps_start, self.eps_end, self.eps_decay = eps_start, eps_end, max(eps_decay, 1)
        self.decisions, self.updates = 0, 0
        self.counts: Counter = Counter()

    @property
    def epsilon(self) -> float:
        frac = min(self.decisions / self.eps_decay, 1.0)
        return self.eps_start + (self.eps_end - self.eps_start) * frac

    def act(self, state: list[float]) -> int:
        """Epsilon-greedy action for ``state``."""
        if self.rng.random() < self.epsilon:
            action = self.rng.randrange(self.n_actions)
        else:
            with torch.no_grad():
                action = int(self.q(torch.tensor([state])).argmax(dim=1))
        self.decisions += 1
        self.counts[action] += 1
        return action

    def greedy(self, state: list[float]) -> int:
        with torch.no_grad():
            return int(self.q(torch.tensor([state])).argmax(dim=1))

    def observe(self, state: list[float], action: int, reward: float, next_state: list[float]) -> float | None:
        """Store one transition and learn from a replayed minibatch; returns the TD loss once learning."""
        self.memory.append((state, action, reward, next_state))
        if len(self.memory) < self.batch:
            return None
        s, a, r, s2 = zip(*self.rng.sample(list(self.memory), self.batch))
        s, s2 = torch.tensor(s), torch.tensor(s2)
        a, r = torch.tensor(a), torch.tensor(r, dtype=torch.float32)
        with torch.no_grad():
            target = r + self.gamma * self.target(s2).max(dim=1).values
        loss = F.smooth_l1_loss(self.q(s).gather(1, a[:, None]).squeeze(1), target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.updates += 1
        if self.updates % self.target_sync == 0:
            self.target.load_state_dict(self.q.state_dict())
        return float(loss.detach())

    def summary(self) -> dict:
        return {"actions": {ACTIONS[a]["name"] if self.n_actions == len(ACTIONS) else str(a): n
                            for a, n in sorted(self.counts.items())},
                "decisions": self.decisions, "updates": self.updates, "epsilon": round(self.epsilon, 4)}
