"""MSPG-SEN training: coarse-to-fine phases of the source's logistic GAN game with its add-ons.

Losses: the source's own (eq. 10/11/17-19), i.e. the non-saturating logistic GAN
(``L_D = softplus(D(fake)) + softplus(-D(real))``, ``L_G = softplus(-D(G(z)))``), not WGAN-GP:
every module of the source speaks in probabilities (D accuracy for APFL, D(real) / D(fake) for
the balancer, AFE's log-likelihoods). The source names no regulariser; we add this loss's
usual companion, StyleGAN2's lazy R1 penalty on reals (every ``R1_EVERY`` D steps, weight
``r1_gamma``, searched; the search may turn it down to almost nothing).

One iteration: ``n_critic`` D steps; AFE's auxiliary D step (when on); one G step with
``L_G + lambda_aux * L_aux(G) + lambda_fm * L_FM + w_c * L_contrastive`` (each term only when its
module is on: a switched-off module is never computed); the EMA generator update. Every
``interval`` G steps the balancer looks at the interval's statistics and picks the next G/D
interplay; every ``apfl_every`` such intervals APFL looks at their mean (the batch SWD is noisy,
and a stall is a trend) and adjusts learning rates and loss weights.

- AFE (eq. 17-20): D_aux scores G's intermediate features; it is trained to call the features
  of independent latents "diverse" (1) and those of a collapsed batch (every latent near one
  latent, ``z_0 + 0.05 eps``: what mode collapse looks like inside G) "collapsed" (0). G, in its
  step, is pushed to make its features look diverse: ``lambda_aux * softplus(-D_aux(F_gen))``
  (eq. 19's second term, weighted as eq. 20). D_aux's step runs without gradients into G.
- Feature matching (eq. 12): squared distance between the batch means of D's per-level features
  on the last real batch (detached) and on the fake batch, averaged over levels.
- Contrastive (eq. 7): see blocks.DEMA; ``contrastive_weight`` and ``tau``.
- Optimisers: AdamW (the source's), betas (0, 0.99) as ProGAN / StyleGAN2, weight decay 1e-4,
  one per network, kept across the progressive phases (every level exists from the start).
  Learning rate of G / D = searched base x APFL multiplier x balancer multiplier.
- EMA: ``beta = 0.5 ** (batch / half_life)``; the full budget's half-life gives the source's
  0.9999 at its batch of 16. The half-life ramps up with the images of the current phase
  (``min(ema_half_life, EMA_RAMPUP x images so far in the phase)``, StyleGAN2's ramp-up, per
  phase): a level that just faded in is random in an EMA that lags by a whole phase.
- Progressive (switchable): the images are split evenly over the levels 4x4 .. dataset
  resolution; each new level fades in over the first half of its phase (G, D and the real
  images blended as in ProGAN). Off: every image at the dataset resolution.
- Dropout 10% (searchable) in D's dense head.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genas.errors import TrainingDiverged
from genas.spaces.base import TrialContext
from genas.spaces.gan import EMA, autocast, optimizer, real_at
from genas.spaces.gan.losses import d_loss, g_loss, r1_penalty
from genas.spaces.layers import downsample2, upsample2
from genas.spaces.mspgsen.balancer import ACTIONS, DQNBalancer, balance_reward, balance_state
from genas.spaces.mspgsen.blocks import contrastive_loss
from genas.spaces.mspgsen.feedback import APFL, batch_swd
from genas.spaces.mspgsen.networks import AuxD, DNet, GNet, set_level
from genas.spaces.progress import Progress

R1_EVERY = 4
EMA_RAMPUP = 0.25
STATS = ("loss_d", "d_real", "d_fake", "d_acc", "swd_batch", "loss_g")


@dataclass
class Hyper:
    lr_g: float
    lr_d: float
    n_critic: int
    r1_gamma: float
    dropout: float
    batch_size: int
    ema_half_life: float
    interval: int
    apfl_every: int = 1
    progressive: bool = True
    afe: bool = False
    lambda_aux: float = 0.1
    feature_matching: bool = False
    lambda_fm: float = 1.0
    contrastive_weight: float = 0.1
    tau: float = 0.1
    apfl: bool = False
    apfl_gamma: float = 0.7
    apfl_patience: int = 3
    balance: bool = False
    eps_start: float = 1.0
    eps_decay_frac: float = 0.5
    reward_mix: float = 0.5


class Trainer:
    """G, D, AFE's D_aux, the EMA G and the feedback modules of one trial."""

    def __init__(self, arch: dict, hp: Hyper, ctx: TrialContext, total_images: int) -> None:
        self.arch, self.hp, self.ctx = arch, hp, ctx
        self.device, self.cuda = ctx.device, ctx.device.type == "cuda"
        fmt = torch.channels_last if self.cuda else torch.contiguous_format
        self.fmt = fmt
        self.G = GNet(arch).to(self.device, memory_format=fmt)
        self.D = DNet(arch, hp.dropout).to(self.device, memory_format=fmt)
        self.ema = EMA(self.G, hp.ema_half_life, rampup=EMA_RAMPUP)
        self.G_ema = self.ema.model
        self.aux = AuxD(arch).to(self.device, memory_format=fmt) if hp.afe else None
        if self.cuda:
            torch.backends.cudnn.benchmark = True

        def adamw(params, lr: float) -> torch.optim.Optimizer:
            return optimizer(params, lr, (0.0, 0.99), kind="adamw", weight_decay=1e-4)

        self.opt_g, self.opt_d = adamw(self.G.parameters(), hp.lr_g), adamw(self.D.parameters(), hp.lr_d)
        self.opt_aux = adamw(self.aux.parameters(), hp.lr_d) if self.aux is not None else None
        self.contrastive = arch["dema"] and arch["contrastive"]
        self.apfl = APFL(gamma=hp.apfl_gamma, patience=hp.apfl_patience) if hp.apfl else None
        decisions = max(total_images // (hp.batch_size * hp.interval), 1)
        self.dqn = DQNBalancer(eps_start=hp.eps_start, eps_end=0.05, eps_decay=int(hp.eps_decay_frac * decisions),
                               batch=16, seed=ctx.seed) if hp.balance else None
        self.action, self.n_critic = 0, hp.n_critic
        self.phase_seen = 0
        self.autocast = autocast(self.device)
        self.sums = torch.zeros(len(STATS), device=self.device)
        self.n_d = self.n_g = self.d_steps = self.g_steps = 0
        self.real_feats: list[torch.Tensor] | None = None
        self.last: dict[str, float] = {}
        self.prev: dict | None = None  # the previous decision's state, stats and quality, for the DQN
        self.quality_ref: float | None = None
        self.apfl_window: list[tuple[float, float]] = []

    # ------------------------------------------------------------ steps
    def z(self) -> torch.Tensor:
        return torch.randn(self.hp.batch_size, self.arch["latent"], device=self.device)

    def d_step(self, real: torch.Tensor) -> None:
        hp, track = self.hp, self.apfl is not None or self.dqn is not None
        r1 = hp.r1_gamma > 0 and self.d_steps % R1_EVERY == 0
        with self.autocast:
            with torch.no_grad():
                fake = self.G(self.z())
            if r1:
                real = real.detach().requires_grad_(True)
            if hp.feature_matching:
                d_real, feats = self.D(real, features=True)
                self.real_feats = [f.detach().float().mean(0) for f in feats]
            else:
                d_real = self.D(real)
            d_real, d_fake = d_real.float(), self.D(fake).float()
            loss = d_loss("logistic", d_real, d_fake)
            if r1:
                loss = loss + hp.r1_gamma * 0.5 * R1_EVERY * r1_penalty(d_real, real)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        self.d_steps += 1
        with torch.no_grad():
            p_real, p_fake = torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean()
            acc = ((d_real > 0).float().mean() + (d_fake < 0).float().mean()) / 2
            swd = batch_swd(real.detach(), fake) if track else torch.zeros((), device=self.device)
            self.sums[:5] += torch.stack([loss.detach(), p_real, p_fake, acc, swd])
        self.n_d += 1

    def aux_step(self) -> None:
        """AFE's D_aux learns diverse (independent latents) vs collapsed (one latent, jittered) features."""
        level = self.G.feature_level
        with self.autocast:
            with torch.no_grad():
                z = self.z()
                diverse = self.G.trunk(z, level)[-1]
                collapsed = self.G.trunk(z[:1] + 0.05 * torch.randn_like(z), level)[-1]
            loss = (F.softplus(-self.aux(diverse, level).float()).mean()
                    + F.softplus(self.aux(collapsed, level).float()).mean())
        self.opt_aux.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_aux.step()

    def g_loss(self) -> torch.Tensor:
        """Eq. 20 with its add-ons; only the switched-on modules are computed."""
        hp = self.hp
        fm_scale = self.apfl.fm_scale if self.apfl is not None else 1.0
        aux_scale = self.apfl.aux_scale if self.apfl is not None else 1.0
        with self.autocast:
            if self.aux is not None:
                fake, features = self.G(self.z(), features=True)
            else:
                fake = self.G(self.z())
            if hp.feature_matching and self.real_feats is not None:
                d_fake, feats = self.D(fake, features=True)
                fm = torch.stack([(f.float().mean(0) - r).pow(2).mean() for f, r in zip(feats, self.real_feats)])
                loss = g_loss("logistic", d_fake) + hp.lambda_fm * fm_scale * fm.mean()
            else:
                loss = g_loss("logistic", self.D(fake))
            if self.aux is not None:
                aux_score = self.aux(features, self.G.feature_level).float()
                loss = loss + hp.lambda_aux * aux_scale * F.softplus(-aux_score).mean()
            if self.contrastive:
                c = contrastive_loss(self.G, hp.tau)
                if c is not None:
                    loss = loss + hp.contrastive_weight * c
        return loss

    def g_step(self) -> None:
        frozen = [self.D] + ([self.aux] if self.aux is not None else [])
        for net in frozen:  # G's step needs gradients through D and D_aux, not into their weights
            net.requires_grad_(False)
        loss = self.g_loss()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        for net in frozen:
            net.requires_grad_(True)
        self.ema.update(self.hp.batch_size, self.phase_seen)
        self.sums[5] += loss.detach()
        self.n_g += 1
        self.g_steps += 1

    # ------------------------------------------------------------ feedback
    def apply_rates(self) -> None:
        act = ACTIONS[self.action] if self.dqn is not None else {"lr_g": 1.0, "lr_d": 1.0}
        g_mult = act["lr_g"] * (self.apfl.lr_g if self.apfl is not None else 1.0)
        d_mult = act["lr_d"] * (self.apfl.lr_d if self.apfl is not None else 1.0)
        for group in self.opt_g.param_groups:
            group["lr"] = self.hp.lr_g * g_mult
        for opt in (self.opt_d, self.opt_aux):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = self.hp.lr_d * d_mult
        self.last.update(lr_g_mult=g_mult, lr_d_mult=d_mult, n_critic=float(self.n_critic))

    def decide(self, images_seen: int) -> None:
        """Read the interval's statistics (one device sync), check them, let APFL and the balancer act."""
        if self.n_d == 0 or self.n_g == 0:
            return
        values = self.sums.tolist()
        stats = {k: v / (self.n_g if k == "loss_g" else self.n_d) for k, v in zip(STATS, values)}
        self.sums.zero_()
        self.n_d = self.n_g = 0
        if not all(math.isfinite(v) for v in stats.values()):
            raise TrainingDiverged(
                f"training diverged after {images_seen} images (loss_d={stats['loss_d']}, loss_g={stats['loss_g']}); "
                f"try lower learning rates (lr_g={self.hp.lr_g:g}, lr_d={self.hp.lr_d:g}) or a higher r1_gamma")
        if self.apfl is None and self.dqn is None:
            del stats["swd_batch"]  # not computed: no module reads it
        self.last.update(stats)
        quality = stats.get("swd_batch", 0.0)
        if self.apfl is not None:
            self.apfl_window.append((quality, stats["d_acc"]))
            if len(self.apfl_window) == self.hp.apfl_every:  # APFL judges a longer, less noisy window
                q, acc = (sum(v) / len(v) for v in zip(*self.apfl_window))
                self.apfl.update(q, acc)
                self.apfl_window.clear()
        if self.dqn is not None:
            if self.quality_ref is None:
                self.quality_ref = max(quality, 1e-6)
            state = balance_state(stats["d_real"], stats["d_fake"], stats["loss_d"], stats["loss_g"], quality,
                                  self.quality_ref, self.prev["quality"] if self.prev else quality, self.action)
            if self.prev is not None:
                reward = balance_reward(self.prev["quality"], quality, self.quality_ref, self.prev["gap"],
                                        stats["d_real"] - stats["d_fake"], self.hp.reward_mix)
                self.dqn.observe(self.prev["state"], self.action, reward, state)
            self.action = self.dqn.act(state)
            self.n_critic = ACTIONS[self.action]["n_critic"]
            self.prev = {"state": state, "quality": quality, "gap": stats["d_real"] - stats["d_fake"]}
        self.apply_rates()

    # ------------------------------------------------------------ the trial
    def train(self, images: torch.Tensor, total: int, progress: Progress, on_report) -> None:
        hp, b = self.hp, self.hp.batch_size
        top = len(self.arch["widths"]) - 1
        levels = list(range(top + 1)) if hp.progressive else [top]
        per_phase = max(total // len(levels), b)
        self.apply_rates()
        for level in levels:
            real_all = real_at(images, 4 * 2 ** level)
            fading = hp.progressive and level > 0
            fade_images, seen = max(per_phase // 2, 1), 0
            if self.apfl is not None:  # the batch SWD of a new resolution is not comparable with the last
                self.apfl.new_scale()
            self.quality_ref, self.prev = None, None
            while seen < per_phase:
                alpha = min(seen / fade_images, 1.0) if fading else 1.0
                set_level(level, alpha, self.G, self.D, self.G_ema)
                for _ in range(self.n_critic):
                    x = real_all[torch.randint(real_all.shape[0], (b,), device=real_all.device)]
                    x = x.to(self.device, non_blocking=True)
                    if fading and alpha < 1.0:
                        x = torch.lerp(upsample2(downsample2(x)), x, alpha)
                    self.d_step(x.contiguous(memory_format=self.fmt))
                    seen += b
                self.phase_seen = seen
                if self.aux is not None:
                    self.aux_step()
                self.g_step()
                report = progress.step(b * self.n_critic)
                if report or self.g_steps % hp.interval == 0:
                    self.decide(progress.done)
                if report:
                    on_report(progress.done, {**self.last, "level": float(level), "alpha": alpha})
        set_level(top, 1.0, self.G, self.D, self.G_ema)

    def summary(self) -> dict:
        out = {}
        if self.apfl is not None:
            out["apfl"] = self.apfl.summary()
        if self.dqn is not None:
            out["balancer"] = self.dqn.summary()
        return out
