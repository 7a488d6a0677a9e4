"""Training throughput of an mspgsen trial vs a plain PyTorch loop over the same networks and losses.

    python bench/bench_mspgsen.py [--budget small] [--dataset mnist5k] [--device auto] [--images N]
                                  [--modules on|off] [--threads N]

Times (a) ``MSPGSENSpace.train`` through a TrialContext of plain callables (reports without quick
eval, EMA, progress, divergence checks, APFL, the DQN balancer and their batch-SWD proxy: all
of the trial's machinery except the evaluators) and (b) a bare loop over the same G, D and
AFE's D_aux with the same losses (logistic GAN + lazy R1, AFE, feature matching, DEMA's
contrastive loss), same batch, one D step per G step, fixed learning rates. ``--modules on``
switches every module on, ``off`` every one off (plain ProGAN-style blocks, no add-ons). With the
modules on, APFL runs its rule-based form (``apfl_meta`` off): the bare loop has no meta-learning
loop to compare the trial's with (its look-ahead is the method's cost, not the trial's). Both at
the dataset resolution (progressive off, so both see the same image size throughout). The two
alternate ``--repeats`` times and the best of each counts (a shared machine's load comes and
goes). Prints a markdown table row: machine, budget, images/s of both, the ratio.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from genas.data import load_dataset
from genas.search.objective import resolve_device
from genas.spaces import TrialContext, get_space
from genas.spaces.gan import images_on
from genas.spaces.mspgsen.blocks import contrastive_loss
from genas.spaces.mspgsen.networks import AuxD, DNet, GNet
from genas.spaces.mspgsen.space import MODULES, build_arch

R1_EVERY = 4


def config_for(modules: str, width: int, latent: int, batch: int) -> dict:
    on = modules == "on"
    config = {"lr_g": 1e-3, "lr_d": 1e-3, "width": width, "latent": latent, "batch_size": batch, "n_critic": 1,
              "r1_gamma": 1.0, "dropout": 0.1, **{m: on for m in MODULES}, "progressive": False}
    if on:
        config.update(kernels="3-5-7", heads=3, contrastive=True, contrastive_weight=0.1, tau=0.1, lambda_aux=0.1,
                      lambda_fm=1.0, apfl_meta=False, apfl_gamma=0.7, apfl_patience=3, balance_decay_ema=True,
                      eps_start=1.0, eps_decay_frac=0.5, reward_mix=0.5)
    return config


def plain_loop(arch: dict, config: dict, images: torch.Tensor, device: torch.device, batch: int,
               n_images: int) -> float:
    cuda = device.type == "cuda"
    fmt = torch.channels_last if cuda else torch.contiguous_format
    G, D = GNet(arch).to(device, memory_format=fmt), DNet(arch, config["dropout"]).to(device, memory_format=fmt)
    aux = AuxD(arch).to(device, memory_format=fmt) if config["afe"] else None
    opt = lambda params: torch.optim.AdamW(params, lr=1e-3, betas=(0.5, 0.99), weight_decay=1e-4)  # noqa: E731
    opt_g, opt_d = opt(G.parameters()), opt(D.parameters())
    opt_aux = opt(aux.parameters()) if aux is not None else None
    fm, contrastive = config["feature_matching"], arch["dema"] and arch["contrastive"]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    latent, level, real_feats, step = arch["latent"], G.feature_level, None, 0
    seen, start = 0, time.perf_counter()
    while seen < n_images:
        real = images[torch.randint(images.shape[0], (batch,), device=images.device)].to(device)
        real = real.contiguous(memory_format=fmt)
        r1 = step % R1_EVERY == 0
        with autocast:
            with torch.no_grad():
                fake = G(torch.randn(batch, latent, device=device))
            if r1:
                real.requires_grad_(True)
            if fm:
                d_real, feats = D(real, features=True)
                real_feats = [f.detach().float().mean(0) for f in feats]
            else:
                d_real = D(real)
            d_real = d_real.float()
            loss_d = F.softplus(D(fake).float()).mean() + F.softplus(-d_real).mean()
            if r1:
                (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
                loss_d = loss_d + 0.5 * R1_EVERY * grad.float().pow(2).flatten(1).sum(1).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        step, seen = step + 1, seen + batch
        if aux is not None:
            with autocast:
                with torch.no_grad():
                    z = torch.randn(batch, latent, device=device)
                    diverse = G.trunk(z, level)[-1]
                    collapsed = G.trunk(z[:1] + 0.05 * torch.randn_like(z), level)[-1]
                loss_aux = (F.softplus(-aux(diverse, level).float()).mean()
                            + F.softplus(aux(collapsed, level).float()).mean())
            opt_aux.zero_grad(set_to_none=True)
            loss_aux.backward()
            opt_aux.step()
        for net in (D, aux):
            if net is not None:
                net.requires_grad_(False)
        with autocast:
            z = torch.randn(batch, latent, device=device)
            fake, features = G(z, features=True) if aux is not None else (G(z), None)
            if fm:
                d_fake, feats = D(fake, features=True)
                loss_g = F.softplus(-d_fake.float()).mean() + torch.stack(
                    [(f.float().mean(0) - r).pow(2).mean() for f, r in zip(feats, real_feats)]).mean()
            else:
                loss_g = F.softplus(-D(fake).float()).mean()
            if aux is not None:
                loss_g = loss_g + 0.1 * F.softplus(-aux(features, level).float()).mean()
            if contrastive:
                loss_g = loss_g + 0.1 * contrastive_loss(G, 0.1)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for net in (D, aux):
            if net is not None:
                net.requires_grad_(True)
    if cuda:
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", default="small")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--device", default="auto")
    p.add_argument("--images", type=int, default=None, help="images per timed run (default: the budget's)")
    p.add_argument("--modules", choices=("on", "off"), default="on")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=2, help="alternating timed runs of each; the best counts")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    space = get_space("mspgsen")
    b = space.budget(args.budget)
    data = load_dataset(args.dataset)
    n_images = args.images or b["images_per_trial"]
    batch = max(b["batch_sizes"])
    config = config_for(args.modules, max(b["widths"]), max(b["latents"]), batch)
    arch = build_arch(config, data.resolution, data.channels)
    reports: list = []
    ctx = TrialContext(dataset=data, budget=args.budget, device=device, seed=0,
                       reporter=lambda s, m: reports.append((s, m)))
    space.budgets = {**space.budgets, args.budget: {**b, "images_per_trial": n_images}}  # instance-level --images

    torch.manual_seed(0)  # warm-up (allocator, cudnn autotune) on a few batches of the plain loop
    plain_loop(arch, config, images_on(ctx), device, batch, batch * 4)
    trial_ips = plain_ips = 0.0
    for _ in range(args.repeats):  # alternate, best of each: a shared machine's load comes and goes
        start = time.perf_counter()
        space.train(config, ctx)
        if device.type == "cuda":
            torch.cuda.synchronize()
        trial_ips = max(trial_ips, n_images / (time.perf_counter() - start))
        torch.manual_seed(0)
        plain_ips = max(plain_ips, plain_loop(arch, config, images_on(ctx), device, batch, n_images))

    dev = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} thread(s)"
    print("| machine | budget | modules | dataset | width, batch, images | trial img/s | plain img/s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {dev} | {args.budget} | {args.modules} | {args.dataset} {data.resolution}x{data.resolution} | "
          f"{max(arch['widths'])}, {batch}, {n_images} | {trial_ips:.0f} | {plain_ips:.0f} | "
          f"{trial_ips / plain_ips:.2f}x |")


if __name__ == "__main__":
    main()
