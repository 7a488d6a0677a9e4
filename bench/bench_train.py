"""Training throughput of a dggan trial vs a plain PyTorch loop on the same network.

    python bench/bench_train.py [--budget small] [--dataset mnist5k] [--device auto] [--images N]

Builds a 32x32 lineage arch (root, then three grows: the shallowest arch at full resolution),
then times (a) ``DGGANSpace.train`` of one ``g_layer`` child on it through a TrialContext with
plain callables (fade-in, EMA, progress, reports, divergence checks: all of genas's machinery
except the evaluators), and (b) a bare WGAN-GP loop over the same child networks, same batch and
n_critic, with no fade, EMA or checks. Prints images/s of both and the seconds of one trial.
Works on CUDA (bf16 autocast, channels_last) when ``--device auto`` finds one.
"""
from __future__ import annotations

import argparse
import time

import torch

from genas.data import load_dataset
from genas.search.objective import resolve_device
from genas.spaces import TrialContext, get_space
from genas.spaces.dggan.network import Nets, apply_action, resolution_of, root_arch
from genas.spaces.dggan.space import images_on
from genas.spaces.dggan.train import gradient_penalty, real_at


def lineage_parent(space, budget: str, channels: int, res: int) -> tuple[dict, dict]:
    b = space.budget(budget)
    arch = root_arch(b["latent"], 1, channels, 3)
    while resolution_of(arch) < res:
        arch, _ = apply_action(arch, {"action": "grow", "channels": channels, "kernel": 3})
    torch.manual_seed(0)
    return {"space": "dggan", "arch": arch}, Nets(arch).tensors()


def plain_loop(arch: dict, images: torch.Tensor, device: torch.device, batch: int, n_images: int,
               lr: float, n_critic: int, gp_weight: float) -> float:
    from genas.spaces.dggan.network import DNet, GNet
    cuda = device.type == "cuda"
    G, D = GNet(arch).to(device), DNet(arch).to(device)
    if cuda:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.0, 0.99))
    real_all = real_at(images, resolution_of(arch))
    seen, start = 0, time.perf_counter()
    while seen < n_images:
        for _ in range(n_critic):
            real = real_all[torch.randint(real_all.shape[0], (batch,), device=real_all.device)].to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                with torch.no_grad():
                    fake = G(torch.randn(batch, arch["latent"], device=device))
                d_real, d_fake = D(real).float(), D(fake).float()
                loss_d = (d_fake.mean() - d_real.mean() + 1e-3 * d_real.pow(2).mean()
                          + gp_weight * gradient_penalty(D, real, fake.to(real.dtype)))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            seen += batch
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss_g = -D(G(torch.randn(batch, arch["latent"], device=device))).float().mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    if cuda:
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", default="small")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--device", default="auto")
    p.add_argument("--images", type=int, default=None, help="images per timed run (default: the budget's)")
    p.add_argument("--channels", type=int, default=None, help="lineage width (default: the budget's widest)")
    args = p.parse_args()
    device = resolve_device(args.device)
    space = get_space("dggan")
    b = space.budget(args.budget)
    data = load_dataset(args.dataset)
    channels = args.channels or max(b["channels"])
    n_images = args.images or b["images_per_trial"]
    parent = lineage_parent(space, args.budget, channels, data.resolution)
    config = {"parent": 0, "action": "g_layer", "channels": channels, "kernel": 3,
              "lr": 1e-3, "n_critic": 1, "gp_weight": 10.0}
    reports: list = []
    ctx = TrialContext(dataset=data, budget=args.budget, device=device, seed=0,
                       reporter=lambda s, m: reports.append((s, m)), parent_loader=lambda: parent)
    b["images_per_trial"] = n_images
    space.budgets = {**space.budgets, args.budget: b}  # instance-level override for --images

    # warm-up (cudnn autotune, allocator) on a few batches of the plain loop
    child_arch, _ = apply_action(parent[0]["arch"], config)
    plain_loop(child_arch, images_on(ctx), device, b["batch_size"], b["batch_size"] * 4, 1e-3, 1, 10.0)

    start = time.perf_counter()
    gen = space.train(config, ctx)
    if device.type == "cuda":
        torch.cuda.synchronize()
    trial_s = time.perf_counter() - start
    start = time.perf_counter()
    gen.sample(b["eval_samples"], seed=0)
    sample_s = time.perf_counter() - start
    plain_ips = plain_loop(child_arch, images_on(ctx), device, b["batch_size"], n_images, 1e-3, 1, 10.0)

    dev = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {dev}   budget: {args.budget}   dataset: {args.dataset} {data.resolution}x{data.resolution}   "
          f"arch: {len(child_arch['g'])} stages, width {channels}, batch {b['batch_size']}, {n_images} images")
    print(f"{'run':<34}{'images/s':>10}{'seconds':>10}")
    print(f"{'dggan trial (space.train)':<34}{n_images / trial_s:>10.0f}{trial_s:>10.1f}")
    print(f"{'plain PyTorch loop':<34}{plain_ips:>10.0f}{n_images / plain_ips:>10.1f}")
    print(f"{'sample eval_samples=' + str(b['eval_samples']):<34}{b['eval_samples'] / sample_s:>10.0f}{sample_s:>10.2f}")
    print(f"overhead of genas machinery: {100 * (plain_ips * trial_s / n_images - 1):+.1f}%  "
          f"(reports: {len(reports)}, quick eval not wired here)")


if __name__ == "__main__":
    main()
