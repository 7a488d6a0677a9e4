"""MSPG-SEN training: coarse-to-fine phases of the source's logistic GAN game with its add-ons.

Losses: the source's own (eq. 10/11/17-19), i.e. the non-saturating logistic GAN
(``L_D = softplus(D(fake)) + softplus(-D(real))``, ``L_G = softplus(-D(G(z)))``), not WGAN-GP:
every module of the source speaks in probabilities (D accuracy for APFL, D(real) / D(fake) for
the balancer, AFE's log-likelihoods). The source names no regulariser; we add this loss's
usual companion, StyleGAN2's lazy R1 penalty on reals (every ``R1_EVERY`` D steps, weight
``r1_gamma``, searched; the search may turn it down to almost nothing).

One iteration: ``n_critic`` D steps; AFE's auxiliary D step (when on); one G step with
``L_G + lambda_aux * L_aux(G) + lambda_fm * L_FM + w_c * L_contrastive`` (each term only when its
module is on: a switched-off module is never computed); the EMA generator update. With APFL's
meta form (``apfl_meta``) an iteration is the source's bilevel loop instead: the inner loop's
``apfl_inner_steps`` G steps (each with its AFE step), then the outer loop's ``n_critic`` D steps
on a looked-ahead G (see feedback.py). Every ``interval`` iterations the balancer reads the
interval's statistics and D's scores on a probe batch of the EMA G and sets the learning rate
and the decay rate (see balancer.py); every ``apfl_every`` such decisions APFL's monitor looks at
their mean (the batch SWD is noisy, and a stall is a trend) and adjusts rates and loss weights.

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
  Learning rate of G / D = searched base x APFL multiplier x balancer multiplier (x the balancer's
  StepLR product under the learning-rate reading of its decay action).
- EMA: ``beta = 0.5 ** (batch / half_life)``; the full budget's half-life gives the source's
  0.9999 at its batch of 16. The half-life ramps up with the images of the current phase
  (``min(ema_half_life, EMA_RAMPUP x images so far in the phase)``, StyleGAN2's ramp-up, per
  phase): a level that just faded in is random in an EMA that lags by a whole phase. The
  balancer (EMA reading of its decay action) scales the effective half-life (ramp-up included).
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
from genas.spaces.mspgsen.balancer import DQNBalancer, Knobs, balance_reward, balance_state
from genas.spaces.mspgsen.blocks import clear_pairs, contrastive_loss
from genas.spaces.mspgsen.feedback import APFL, batch_swd, lookahead_images
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
    apfl_meta: bool = False
    apfl_inner_steps: int = 1
    apfl_gamma: float = 0.7
    apfl_patience: int = 3
    balance: bool = False
    balance_decay_ema: bool = True
    eps_start: float = 1.0
    eps_decay_frac: float = 0.5
    reward_mix: float = 1.0
    updates_per_decision: int = 2


class Trainer:
    """G, D, AFE's D_aux, the EMA G and the feedback modules of one trial.

    ``warm``: ``(trial number, payload)`` of an earlier trial's balancer to start from (see balancer.py).
    """

    def __init__(self, arch: dict, hp: Hyper, ctx: TrialContext, total_images: int,
                 warm: tuple[int, dict] | None = None) -> None:
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
        self.meta = hp.apfl and hp.apfl_meta
        self.total_images = total_images
        iterations = max(total_images // (hp.batch_size * hp.n_critic), 1)
        decisions = max(iterations // hp.interval, 1)
        self.dqn = self.knobs = None
        if hp.balance:
            self.dqn = DQNBalancer(eps_start=hp.eps_start, eps_end=0.05, eps_decay=int(hp.eps_decay_frac * decisions),
                                   batch=16, updates_per_decision=hp.updates_per_decision, seed=ctx.seed)
            if warm is not None and not self.dqn.load_payload(warm[1], source_trial=warm[0]):
                ctx.log.info("balancer: trial %s's Q-network does not fit this one; starting afresh", warm[0])
            self.knobs = Knobs(decay_ema=hp.balance_decay_ema, decisions=decisions)
            # the probe's latents: fixed for the trial, drawn aside so the GAN's random stream stays the same
            gen = torch.Generator().manual_seed(ctx.seed + 1)
            self.probe_z = torch.randn(hp.batch_size, arch["latent"], generator=gen).to(self.device)
        self.phase_seen = 0
        self.autocast = autocast(self.device)
        self.sums = torch.zeros(len(STATS), device=self.device)
        self.n_d = self.n_g = self.d_steps = self.g_steps = self.iterations = 0
        self.real_feats: list[torch.Tensor] | None = None
        self.last_real: torch.Tensor | None = None
        self.last: dict[str, float] = {}
        self.prev: dict | None = None  # the previous decision: state, action, D's gap, the probe's images
        self.delta_sq: float | None = None  # running mean square of the probe's improvement (reward scale)
        self.apfl_window: list[tuple[float, float]] = []
        self.order: list[str] | None = None  # set to a list to record the step order (tests)

    # ------------------------------------------------------------ steps
    def z(self) -> torch.Tensor:
        return torch.randn(self.hp.batch_size, self.arch["latent"], device=self.device)

    def d_step(self, real: torch.Tensor, lookahead: bool = False) -> None:
        """One D step; ``lookahead``: APFL's outer step, on the images of G after a differentiable inner step."""
        hp, track = self.hp, self.apfl is not None
        r1 = hp.r1_gamma > 0 and self.d_steps % R1_EVERY == 0
        with self.autocast:
            if lookahead:
                fake = lookahead_images(self.G, self.D, self.opt_g, self.z(), self.z())
                clear_pairs(self.G)  # the look-ahead's DEMA views are not G's contrastive term
            else:
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
        if lookahead:  # the look-ahead's own (detached) copies of G's weights need no gradient
            grads = torch.autograd.grad(loss, list(self.D.parameters()), allow_unused=True)
            for p, g in zip(self.D.parameters(), grads):
                p.grad = g
        else:
            loss.backward()
        self.opt_d.step()
        self.d_steps += 1
        with torch.no_grad():
            p_real, p_fake = torch.sigmoid(d_real).mean(), torch.sigmoid(d_fake).mean()
            acc = ((d_real > 0).float().mean() + (d_fake < 0).float().mean()) / 2
            swd = batch_swd(real.detach(), fake.detach()) if track else torch.zeros((), device=self.device)
            self.sums[:5] += torch.stack([loss.detach(), p_real, p_fake, acc, swd])
        self.last_real = real.detach()
        self.n_d += 1
        if self.order is not None:
            self.order.append("D*" if lookahead else "D")

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
        if self.order is not None:
            self.order.append("G")

    # ------------------------------------------------------------ feedback
    def apply_rates(self) -> None:
        lr_mult = self.knobs.lr_mult if self.knobs is not None else 1.0
        g_mult = lr_mult * (self.apfl.lr_g if self.apfl is not None else 1.0)
        d_mult = lr_mult * (self.apfl.lr_d if self.apfl is not None else 1.0)
        for group in self.opt_g.param_groups:
            group["lr"] = self.hp.lr_g * g_mult
        for opt in (self.opt_d, self.opt_aux):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = self.hp.lr_d * d_mult
        if self.knobs is not None and self.knobs.decay_ema:  # the effective half-life: its ramp-up too
            self.ema.half_life = self.hp.ema_half_life * self.knobs.ema
            self.ema.rampup = EMA_RAMPUP * self.knobs.ema
        self.last.update(lr_g_mult=g_mult, lr_d_mult=d_mult, ema_half_life=self.ema.half_life)

    @torch.no_grad()
    def probe(self) -> dict:
        """D's evaluation of the EMA G's probe images (now, and those of the last decision) and their statistics."""
        self.D.eval()  # no dropout: the same D must judge both batches alike
        with self.autocast:
            fake = self.G_ema(self.probe_z).float()
            now = self.D(fake).float()
            before = self.D(self.prev["probe"]).float() if self.prev is not None else None
        self.D.train()
        real = self.last_real.float()
        spread = float(fake.std(0).mean() / real.std(0).mean().clamp_min(1e-6))
        out = {"images": fake, "p_probe": float(torch.sigmoid(now).mean()), "spread": spread,
               "shift": float(fake.mean() - real.mean()), "delta": None}
        if before is not None:
            out["delta"] = float(now.mean() - before.mean())
        return out

    def balance(self, stats: dict[str, float], done: int) -> None:
        """One decision of the DQN: reward the last action from D's evaluation, pick and apply the next."""
        probe = self.probe()
        improvement = 0.0
        if probe["delta"] is not None:  # the improvement of the EMA G's images in the current D's eyes
            d2 = probe["delta"] ** 2
            self.delta_sq = d2 if self.delta_sq is None else 0.9 * self.delta_sq + 0.1 * d2
            improvement = math.tanh(probe["delta"] / (math.sqrt(self.delta_sq) + 1e-8))
        gap = stats["d_real"] - stats["d_fake"]
        state = balance_state(stats["d_real"], stats["d_fake"], probe["p_probe"], probe["spread"], probe["shift"],
                              improvement, self.knobs.features(), min(done / self.total_images, 1.0))
        if self.prev is not None:
            reward = balance_reward(improvement, self.prev["gap"], gap, self.hp.reward_mix)
            self.dqn.observe(self.prev["state"], self.prev["action"], reward, state)
            self.last["balancer_reward"] = reward
        action = self.dqn.act(state)
        self.knobs.apply(action)
        self.prev = {"state": state, "action": action, "gap": gap, "probe": probe["images"]}
        self.last.update(self.dqn.fractions())
        self.last.update(balancer_p_probe=probe["p_probe"], balancer_spread=probe["spread"])

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
        if self.apfl is None:
            del stats["swd_batch"]  # not computed: no module reads it
        self.last.update(stats)
        if self.apfl is not None:
            self.apfl_window.append((stats["swd_batch"], stats["d_acc"]))
            if len(self.apfl_window) == self.hp.apfl_every:  # APFL judges a longer, less noisy window
                q, acc = (sum(v) / len(v) for v in zip(*self.apfl_window))
                self.apfl.update(q, acc)
                self.apfl_window.clear()
        if self.dqn is not None:
            self.balance(stats, images_seen)
        self.apply_rates()

    # ------------------------------------------------------------ the trial
    def afe_and_g_step(self) -> None:
        if self.aux is not None:
            self.aux_step()
        self.g_step()

    def iteration(self, next_real) -> int:
        """One iteration (plain: D steps, then G; APFL meta: G's inner loop, then D's outer steps); real images used."""
        used = 0
        if not self.meta:
            for _ in range(self.hp.n_critic):
                self.d_step(next_real())
                used += self.hp.batch_size
            self.afe_and_g_step()
            return used
        for _ in range(self.hp.apfl_inner_steps):  # inner loop: G adapts to the current D (eq. 13)
            self.afe_and_g_step()
        for _ in range(self.hp.n_critic):  # outer loop: D against the G that answers it (eq. 14)
            self.d_step(next_real(), lookahead=True)
            used += self.hp.batch_size
        return used

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
            self.prev = None  # nor are the probe's images: the balancer's next transition starts afresh
            self.real_feats = None  # D's features of the last level's reals do not match this level's
            alpha = 1.0

            def next_real() -> torch.Tensor:
                x = real_all[torch.randint(real_all.shape[0], (b,), device=real_all.device)]
                x = x.to(self.device, non_blocking=True)
                if fading and alpha < 1.0:
                    x = torch.lerp(upsample2(downsample2(x)), x, alpha)
                return x.contiguous(memory_format=self.fmt)

            while seen < per_phase:
                alpha = min(seen / fade_images, 1.0) if fading else 1.0
                set_level(level, alpha, self.G, self.D, self.G_ema)
                used = self.iteration(next_real)
                seen += used
                self.phase_seen = seen
                self.iterations += 1
                report = progress.step(used)
                if report or self.iterations % hp.interval == 0:
                    self.decide(progress.done)
                if report:
                    on_report(progress.done, {**self.last, "level": float(level), "alpha": alpha})
        set_level(top, 1.0, self.G, self.D, self.G_ema)

    def summary(self) -> dict:
        out = {}
        if self.apfl is not None:
            out["apfl"] = {**self.apfl.summary(), "meta": self.meta,
                           **({"inner_steps": self.hp.apfl_inner_steps} if self.meta else {})}
        if self.dqn is not None:
            out["balancer"] = {**self.dqn.summary(), "knobs": self.knobs.summary()}
        return out
