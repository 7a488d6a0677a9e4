"""SAN training: G and R each step on their own loss, then their shared kernels are averaged.

One iteration, with a batch X of real images and z ~ N(0, I) (the source's steps 1-4):

1. forward: ``G(z)``, ``R(G(z))``, ``R(X)``;
2. the losses of the trial's reading (see losses.py), each network's total:

   - ``cooperative``: G minimises ``L_GD + w_i L_GI + w_z L_Z``, R minimises ``L_RZ + L_RX + w_z L_Z``
     with ``L_GD = L_RZ = SW(R(G(z)), z)``, ``L_RX = SW(R(X), z)``;
   - ``adversarial``: G minimises ``W + w_i L_GI + w_z L_Z``, R minimises ``-W + w_gp GP + w_z L_Z``
     with ``W = E[u . R(X)] - E[u . R(G(z))]`` (R's latent read along the unit diagonal u) and GP
     the gradient penalty on R;

   where ``L_GI = MSE(G(z), X)`` (unpaired) and ``L_Z = MSE(R(G(z)), z)`` (paired);
3. each network's gradient of its own total only. In the cooperative reading one backward of
   ``L_GD + w_i L_GI + L_RX + w_z L_Z`` gives exactly that (G and R hold *separate copies* of the
   shared kernels, L_RX does not depend on G and L_GI not on R; tests check it against separate
   backwards). In the adversarial reading W enters the two totals with opposite signs, so each
   total is differentiated with respect to its own network's parameters (``backward(inputs=...)``)
   from the same forward: the simultaneous update the source describes;
4. an Adam step (L2 regularisation as Adam's coupled ``weight_decay``) for each network;
5. :func:`share_kernels`: both copies of every shared kernel := ``lam * W_G + (1 - lam) * W_R``;
6. the EMA generator (what is sampled from) follows G with a half-life in images.

Images are counted as real images shown to R. On CUDA: bf16 autocast and channels_last; the
sliced distances sort in float32.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch

from genas.errors import GenasError, TrainingDiverged
from genas.spaces.base import Generator, TrialContext
from genas.spaces.gan import EMA, autocast, optimizer, real_batch
from genas.spaces.progress import Progress
from genas.spaces.san.losses import (diversity, latent_gradient_penalty, latent_wasserstein, paired_latent_mse,
                                     sliced_wasserstein, unpaired_mse)
from genas.spaces.san.networks import GNet, RNet, init_shared, share_kernels, shared_pairs

READINGS = ("adversarial", "cooperative")
LOSS_NAMES = {"cooperative": ("loss_gd", "loss_gi", "loss_rx", "loss_latent"),
              "adversarial": ("loss_w", "loss_gi", "loss_latent", "loss_gp")}
DIVERSITY_SAMPLES = 64


def check_reading(reading: str) -> str:
    if reading not in READINGS:
        raise GenasError(f"unknown san reading {reading!r}; use one of {', '.join(READINGS)}")
    return reading


@dataclass
class Hyper:
    lr: float
    weight_decay: float
    lam: float
    mse_weight: float  # the unpaired image MSE, L_GI
    batch_size: int
    ema_half_life: float
    reading: str = "adversarial"
    latent_mse_weight: float = 1.0  # the paired latent MSE, L_Z
    gp_weight: float = 10.0  # adversarial only
    betas: tuple[float, float] = (0.5, 0.99)

    def __post_init__(self) -> None:
        check_reading(self.reading)


class Nets:
    """G, R (separate copies of the shared kernels) and the EMA of G."""

    def __init__(self, arch: dict) -> None:
        self.arch = arch
        self.G, self.R = GNet(arch), RNet(arch)
        init_shared(self.G, self.R)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)

    @property
    def pairs(self) -> list[tuple[torch.nn.Parameter, torch.nn.Parameter]]:
        return shared_pairs(self.G, self.R)

    def to(self, *args, **kwargs) -> "Nets":
        for name in ("G", "R", "G_ema"):
            setattr(self, name, getattr(self, name).to(*args, **kwargs))
        return self

    def tensors(self) -> dict[str, torch.Tensor]:
        """The whole training state: ``G.*``, ``R.*`` and ``G_ema.*``."""
        return {f"{name}.{k}": v.detach().float().cpu().contiguous()
                for name in ("G", "R", "G_ema") for k, v in getattr(self, name).state_dict().items()}


def losses(G: GNet, R: RNet, real: torch.Tensor, z: torch.Tensor, reading: str = "cooperative",
           gp: bool = True) -> dict[str, torch.Tensor]:
    """The terms of ``reading`` (cooperative: L_RZ is the same tensor as L_GD); ``gp``: compute the penalty."""
    fake = G(z)
    fake_latent = R(fake)
    terms = {"loss_gi": unpaired_mse(fake, real), "loss_latent": paired_latent_mse(fake_latent, z)}
    if check_reading(reading) == "cooperative":
        gd = sliced_wasserstein(fake_latent, z)
        return {**terms, "loss_gd": gd, "loss_rz": gd, "loss_rx": sliced_wasserstein(R(real), z)}
    terms["loss_w"] = latent_wasserstein(R(real), fake_latent)
    terms["loss_gp"] = latent_gradient_penalty(R, real, fake) if gp else torch.zeros((), device=real.device)
    return terms


def totals(l: dict[str, torch.Tensor], hp: Hyper) -> tuple[torch.Tensor, torch.Tensor]:
    """(G's loss, R's loss) from the terms of :func:`losses`."""
    shared = hp.latent_mse_weight * l["loss_latent"]
    if hp.reading == "cooperative":
        return l["loss_gd"] + hp.mse_weight * l["loss_gi"] + shared, l["loss_rz"] + l["loss_rx"] + shared
    return (l["loss_w"] + hp.mse_weight * l["loss_gi"] + shared,
            -l["loss_w"] + hp.gp_weight * l["loss_gp"] + shared)


def optimise(nets: Nets, opt_g: torch.optim.Optimizer, opt_r: torch.optim.Optimizer, real: torch.Tensor,
             z: torch.Tensor, hp: Hyper, amp: torch.autocast) -> torch.Tensor:
    """Steps 1-4: each network's own gradient and its own optimiser step; returns the reading's terms."""
    with amp:
        l = losses(nets.G, nets.R, real, z, hp.reading, gp=hp.gp_weight > 0)
        loss_g, loss_r = totals(l, hp)
    opt_g.zero_grad(set_to_none=True)
    opt_r.zero_grad(set_to_none=True)
    if hp.reading == "cooperative":
        (loss_g + l["loss_rx"]).backward()  # L_GD + w_i L_GI + w_z L_Z + L_RX: see step 3
    else:
        loss_g.backward(inputs=list(nets.G.parameters()), retain_graph=True)
        loss_r.backward(inputs=list(nets.R.parameters()))
    opt_g.step()
    opt_r.step()
    return torch.stack([l[k].detach() for k in LOSS_NAMES[hp.reading]] + [loss_g.detach(), loss_r.detach()])


def make_optimisers(nets: Nets, hp: Hyper) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    def adam(net: torch.nn.Module) -> torch.optim.Optimizer:
        return optimizer(net.parameters(), hp.lr, hp.betas, weight_decay=hp.weight_decay)
    return adam(nets.G), adam(nets.R)


def train(nets: Nets, images: torch.Tensor, hp: Hyper, n_images: int, ctx: TrialContext, progress: Progress,
          wrap: Callable[[Nets], Generator]) -> float:
    """Train on ``n_images`` real images (``images``: the dataset on ctx.device); returns the final diversity."""
    device = ctx.device
    opt_g, opt_r = make_optimisers(nets, hp)
    pairs = nets.pairs
    ema = EMA(nets.G, hp.ema_half_life, target=nets.G_ema)
    amp = autocast(device)
    b, latent = hp.batch_size, nets.arch["latent"]
    names = LOSS_NAMES[hp.reading] + ("loss_g", "loss_r")
    probe = torch.randn(DIVERSITY_SAMPLES, latent, generator=torch.Generator().manual_seed(ctx.seed)).to(device)
    seen, sums, count, spread = 0, torch.zeros(len(names), device=device), 0, float("nan")

    def check(means: dict[str, float]) -> None:
        if not all(math.isfinite(v) for v in means.values()):
            raise TrainingDiverged(f"training diverged after {progress.done} images ({means}); try a lower "
                                   f"learning rate (lr={hp.lr:g}) or a lower MSE weight (mse_weight={hp.mse_weight:g})")

    while seen < n_images:
        real = real_batch(images, b, device)
        sums += optimise(nets, opt_g, opt_r, real, torch.randn(b, latent, device=device), hp, amp)
        share_kernels(pairs, hp.lam)
        ema.update(b)
        seen += b
        count += 1
        report = progress.step(b)
        if report or count % 16 == 0 or seen >= n_images:
            means = dict(zip(names, (sums / count).tolist()))
            check(means)
            if report:
                with torch.no_grad(), amp:
                    spread = diversity(nets.G_ema(probe))
                ctx.report(progress.done, {**means, "diversity": spread, **ctx.quick_eval(wrap(nets))})
                sums.zero_()
                count = 0
    if not math.isfinite(spread):
        with torch.no_grad(), amp:
            spread = diversity(nets.G_ema(probe))
    return spread
