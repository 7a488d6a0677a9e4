"""APFL, the adaptive perception-behaviour feedback loop (source section III-C), and its quality proxy.

APFL has two forms, the ``apfl_meta`` switch (under ``apfl``):

- ``apfl_meta=True``, the source's form (its Fig. 4: "it optimizes the balance by treating the
  generator and discriminator as the inner and outer layers, respectively", eq. 13/14): a
  bilevel loop. Inner loop: G takes ``apfl_inner_steps`` optimiser steps on its total loss
  against the current D (eq. 13). Outer loop: D's step (eq. 14) is taken on the images of the G
  that answers it: :func:`lookahead_images` makes one more, differentiable, inner step of G's
  adversarial loss (eq. 10) and D's loss (eq. 11) is evaluated on that looked-ahead G, so D's
  gradient includes the path through G's response (the meta-gradient, second order; unrolled
  GAN's look-ahead with the roles of G and D swapped). The look-ahead step is G's AdamW step
  with its current second-moment estimate held constant. The performance monitor below runs
  too ("we define several performance metrics in meta learn, and dynamically adjust the
  training strategy").
- ``apfl_meta=False``: the rule-based scheduler alone (the monitor below) with the usual
  alternating D-then-G updates: the ablation of the meta loop.

The performance monitor (:class:`APFL`) is plain Python: the trainer feeds it, every
``apfl_every`` decisions, the quality proxy (lower is better) and D's accuracy averaged over
them, and applies what it returns (learning-rate and loss-weight multipliers). Its rules, from
the source's text:

- D too strong (accuracy above ``acc_high``): step-decay D's learning rate
  (``eta_D <- eta_D * gamma``, eq. 9) and raise the feature-matching weight (eq. 12 is the
  "simplified, collaborative" feedback the source gives a generator that is losing).
- D too weak (accuracy below ``acc_low``): undo one such step (D's rate and the FM weight
  move back towards 1).
- Quality stalls (no relative improvement of ``min_delta`` for ``patience`` checks): StepLR on
  both rates (eq. 8/9) and raise AFE's weight (more pressure towards diverse features).

Rates never fall below ``lr_floor`` x their start; weights never rise above ``weight_cap`` x.

Quality proxy: :func:`batch_swd`, a sliced Wasserstein distance between the real and the fake
batch of every D step (pixels, at most 16x16, 32 random projections), averaged over the interval.
``ctx.quick_eval``'s ``swd_quick`` only runs at report time (2-8 times a trial), too rarely to
steer training, and is empty in unit tests; it stays the objective's pruning signal.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from genas.spaces.gan.losses import g_loss


def batch_swd(real: torch.Tensor, fake: torch.Tensor, projections: int = 32) -> torch.Tensor:
    """Sliced Wasserstein distance (x100) between two equal-sized image batches, a cheap quality proxy."""
    if real.shape[-1] > 16:
        factor = real.shape[-1] // 16
        real, fake = F.avg_pool2d(real, factor), F.avg_pool2d(fake, factor)
    a, b = real.flatten(1).float(), fake.flatten(1).float()
    dirs = F.normalize(torch.randn(a.shape[1], projections, device=a.device), dim=0)
    pa, pb = (a @ dirs).sort(dim=0).values, (b @ dirs).sort(dim=0).values
    return (pa - pb).abs().mean() * 100.0


def lookahead_images(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, z_inner: torch.Tensor,
                     z_outer: torch.Tensor) -> torch.Tensor:
    """Images of G after one differentiable inner step on ``softplus(-D(G(z_inner)))``, for D's outer loss.

    The step is AdamW's direction with G's current second moments as constants (before G's
    first step: the sign of the gradient, which is what Adam's first step is) at G's current
    learning rate; weight decay is left out. The result carries a graph into D's parameters
    through the step, so ``backward`` on a loss of D's scores on it gives D the meta-gradient.
    G's own parameters get no gradient (the step starts from detached copies).
    """
    names = [n for n, _ in G.named_parameters()]
    params = list(G.parameters())
    theta = [p.detach().requires_grad_(True) for p in params]
    inner = g_loss("logistic", D(functional_call(G, dict(zip(names, theta)), (z_inner,))))
    grads = torch.autograd.grad(inner, theta, create_graph=True, allow_unused=True)
    group = opt_g.param_groups[0]
    lr, eps, beta2 = group["lr"], group["eps"], group["betas"][1]
    stepped = {}
    for name, p, t, g in zip(names, params, theta, grads):
        if g is None:  # a layer of another level: not in this forward pass
            stepped[name] = t
            continue
        state = opt_g.state.get(p, {})
        if "exp_avg_sq" in state:
            steps = float(state["step"])
            scale = (state["exp_avg_sq"] / (1.0 - beta2 ** steps)).sqrt() + eps
        else:
            scale = g.detach().abs() + eps
        stepped[name] = t - lr * g / scale
    return functional_call(G, stepped, (z_outer,))


@dataclass
class APFL:
    gamma: float = 0.7
    patience: int = 3
    min_delta: float = 0.02
    acc_high: float = 0.9
    acc_low: float = 0.6
    weight_step: float = 1.5
    lr_floor: float = 0.05
    weight_cap: float = 4.0
    lr_g: float = 1.0
    lr_d: float = 1.0
    fm_scale: float = 1.0
    aux_scale: float = 1.0
    best: float = float("inf")
    stalled: int = 0
    counts: Counter = field(default_factory=Counter)

    def update(self, quality: float, d_accuracy: float) -> list[str]:
        """One check; returns the adjustments made (``d_too_strong``, ``d_too_weak``, ``stalled``)."""
        made = []
        if d_accuracy > self.acc_high:
            self.lr_d = max(self.lr_d * self.gamma, self.lr_floor)
            self.fm_scale = min(self.fm_scale * self.weight_step, self.weight_cap)
            made.append("d_too_strong")
        elif d_accuracy < self.acc_low and (self.lr_d < 1.0 or self.fm_scale > 1.0):
            self.lr_d = min(self.lr_d / self.gamma, 1.0)
            self.fm_scale = max(self.fm_scale / self.weight_step, 1.0)
            made.append("d_too_weak")
        if quality < self.best * (1.0 - self.min_delta):
            self.best, self.stalled = quality, 0
        else:
            self.stalled += 1
            if self.stalled >= self.patience:
                self.lr_g = max(self.lr_g * self.gamma, self.lr_floor)
                self.lr_d = max(self.lr_d * self.gamma, self.lr_floor)
                self.aux_scale = min(self.aux_scale * self.weight_step, self.weight_cap)
                self.stalled = 0
                made.append("stalled")
        self.counts.update(made)
        return made

    def new_scale(self) -> None:
        """The proxy is measured at a new resolution: forget the best so far (it is not comparable)."""
        self.best, self.stalled = float("inf"), 0

    def summary(self) -> dict:
        return {"adjustments": dict(self.counts), "lr_g": round(self.lr_g, 4), "lr_d": round(self.lr_d, 4),
                "fm_scale": round(self.fm_scale, 4), "aux_scale": round(self.aux_scale, 4)}
