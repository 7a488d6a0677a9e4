"""SAN training: G and R each step on their own loss, then their shared kernels are averaged.

One iteration, with a batch X of real images and z ~ N(0, I):

1. forward: ``G(z)``, ``R(G(z))``, ``R(X)``;
2. losses: ``L_GD = L_RZ = W(R(G(z)), z)``, ``L_GI = MSE(G(z), X)``, ``L_RX = W(R(X), z)``;
3. one backward of ``L_GD + w * L_GI + L_RX``. Because G and R hold *separate copies* of the
   shared kernels, this gives each network exactly its own loss's gradient: L_RX does not depend
   on G's parameters and L_GI not on R's, so G receives d(L_GD + w L_GI) and R receives
   d(L_RZ + L_RX) (L_RZ is L_GD). Two backwards would compute the same numbers at twice the cost;
   tests check the equality against the two separate backwards;
4. an Adam step (L2 regularisation as Adam's coupled ``weight_decay``) for each network;
5. :func:`share_kernels`: both copies of every shared kernel := ``lam * W_G + (1 - lam) * W_R``;
6. the EMA generator (what is sampled from) follows G with a half-life in images.

Images are counted as real images shown to R. On CUDA: bf16 autocast and channels_last; the
sliced Wasserstein sorts in float32.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch

from genas.errors import TrainingDiverged
from genas.spaces.base import Generator, TrialContext
from genas.spaces.gan import EMA, autocast, optimizer, real_batch
from genas.spaces.progress import Progress
from genas.spaces.san.losses import diversity, sliced_wasserstein, unpaired_mse
from genas.spaces.san.networks import GNet, RNet, init_shared, share_kernels, shared_pairs

LOSS_NAMES = ("loss_gd", "loss_gi", "loss_rx")
DIVERSITY_SAMPLES = 64


@dataclass
class Hyper:
    lr: float
    weight_decay: float
    lam: float
    mse_weight: float
    batch_size: int
    ema_half_life: float


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


def losses(G: GNet, R: RNet, real: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """The source's four losses (L_RZ is the same tensor as L_GD)."""
    fake = G(z)
    gd = sliced_wasserstein(R(fake), z)
    return {"loss_gd": gd, "loss_gi": unpaired_mse(fake, real), "loss_rz": gd,
            "loss_rx": sliced_wasserstein(R(real), z)}


def optimise(nets: Nets, opt_g: torch.optim.Optimizer, opt_r: torch.optim.Optimizer, real: torch.Tensor,
             z: torch.Tensor, hp: Hyper, amp: torch.autocast) -> torch.Tensor:
    """Steps 1-4: each network's own gradient and its own optimiser step; returns [gd, gi, rx]."""
    with amp:
        l = losses(nets.G, nets.R, real, z)
        total = l["loss_gd"] + hp.mse_weight * l["loss_gi"] + l["loss_rx"]
    opt_g.zero_grad(set_to_none=True)
    opt_r.zero_grad(set_to_none=True)
    total.backward()
    opt_g.step()
    opt_r.step()
    return torch.stack([l[k].detach() for k in LOSS_NAMES])


def make_optimisers(nets: Nets, hp: Hyper) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    def adam(net: torch.nn.Module) -> torch.optim.Optimizer:
        return optimizer(net.parameters(), hp.lr, (0.5, 0.99), weight_decay=hp.weight_decay)
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
    probe = torch.randn(DIVERSITY_SAMPLES, latent, generator=torch.Generator().manual_seed(ctx.seed)).to(device)
    seen, sums, count, spread = 0, torch.zeros(len(LOSS_NAMES), device=device), 0, float("nan")

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
            means = dict(zip(LOSS_NAMES, (sums / count).tolist()))
            check(means)
            if report:
                with torch.no_grad(), amp:
                    spread = diversity(nets.G_ema(probe))
                ctx.report(progress.done, {**means, "loss_g": means["loss_gd"] + hp.mse_weight * means["loss_gi"],
                                           "loss_r": means["loss_gd"] + means["loss_rx"],  # L_RZ is L_GD
                                           "diversity": spread, **ctx.quick_eval(wrap(nets))})
                sums.zero_()
                count = 0
    if not math.isfinite(spread):
        with torch.no_grad(), amp:
            spread = diversity(nets.G_ema(probe))
    return spread
