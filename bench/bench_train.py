"""Training throughput of a dggan trial vs a plain PyTorch loop on the same networks.

    python bench/bench_train.py [--budget small] [--dataset mnist5k] [--device auto] [--images N]

Builds a lineage at the dataset's resolution (a root, then ``grow`` actions of the budget's
width: the shallowest architecture that makes full-size images), then times (a) a ``train on``
child through ``DGGANSpace.train`` and a ``TrialContext`` with plain callables (everything the
shared GAN kit does in a trial: the adversarial loop, lazy R1, EMA with ramp-up, progress,
reports, divergence checks, the saved state; no evaluators), and (b) a bare loop over the same
networks: the same loss (non-saturating logistic with R1 every 4 D steps), batch and Adam, no EMA,
no reports, no checks. Both run side by side in one process; the ratio (a)/(b) is the figure.
On CUDA both use bf16 autocast and channels_last, as a trial does.
"""
from __future__ import annotations

import argparse
import time

import torch

from genas.data import load_dataset
from genas.search.objective import resolve_device
from genas.spaces import TrialContext, get_space
from genas.spaces.dggan.actions import apply_action
from genas.spaces.gan import images_on, prepare, real_at
from genas.spaces.gan.device import autocast, real_batch
from genas.spaces.gan.grown import Nets, resolution_of, root_arch
from genas.spaces.gan.losses import GANLoss


def lineage(settings: dict, image_channels: int, res: int) -> tuple[dict, dict]:
    """A (config, tensors) parent state at resolution ``res``, as a saved dggan trial holds it."""
    width = max(settings["widths"])
    arch = root_arch(settings["latent"], image_channels, width, 3)
    while resolution_of(arch) < res:
        arch, _ = apply_action(arch, {"action": "grow", "channels": width, "kernel": 3})
    torch.manual_seed(0)
    return {"space": "dggan", "arch": arch, "lineage_images": 0}, Nets(arch).tensors()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(arch: dict, images: torch.Tensor, device: torch.device, batch: int, n_images: int,
               lr: float, r1_gamma: float) -> float:
    """Images per second of the textbook loop over the same networks and loss."""
    nets = prepare(Nets(arch), device)
    G, D = nets.G, nets.D
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.0, 0.99))
    loss = GANLoss(kind="logistic", r1_gamma=r1_gamma)
    seen = step = 0
    sync(device)
    start = time.perf_counter()
    while seen < n_images:
        real = real_batch(images, batch, device)
        with autocast(device):
            with torch.no_grad():
                fake = G(torch.randn(batch, arch["latent"], device=device))
            loss_d, _, _ = loss.discriminator(D, real, fake, step)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        with autocast(device):
            loss_g = loss.generator(D, G(torch.randn(batch, arch["latent"], device=device)))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        seen, step = seen + batch, step + 1
    sync(device)
    return seen / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", default="small")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--device", default="auto")
    p.add_argument("--images", type=int, default=None, help="images per timed run (default: the budget's last generation)")
    args = p.parse_args()
    device = resolve_device(args.device)
    space = get_space("dggan")
    data = load_dataset(args.dataset)
    options = space.resolve_options({"images": str(args.images)} if args.images else {})
    settings = space.settings(options, args.budget, data.resolution)
    n_images = args.images or int(settings["schedule"][-1])
    parent = lineage(settings, data.channels, data.resolution)
    config = {"parent": 0, "generation": 0 if args.images else len(settings["schedule"]) - 1, "action": "train",
              "channels": max(settings["widths"]), "kernel": 3, "lr": 2e-3}
    reports: list = []
    saved: list = []
    ctx = TrialContext(dataset=data, budget=args.budget, device=device, seed=0, options=options,
                       reporter=lambda s, m: reports.append((s, m)), parent_loader=lambda: parent,
                       state_saver=lambda c, t: saved.append(c), attr_setter=lambda k, v: None)
    images = real_at(images_on(ctx), data.resolution)
    arch = parent[0]["arch"]
    plain_loop(arch, images, device, settings["batch_size"], settings["batch_size"] * 8, 2e-3, settings["r1_gamma"])  # warm-up

    sync(device)
    start = time.perf_counter()
    space.train(config, ctx)
    sync(device)
    trial_s = time.perf_counter() - start
    plain_ips = plain_loop(arch, images, device, settings["batch_size"], n_images, 2e-3, settings["r1_gamma"])

    dev = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {dev}   budget: {args.budget}   dataset: {args.dataset} {data.resolution}x{data.resolution}   "
          f"arch: {len(arch['g'])} G layers, width {max(settings['widths'])}, batch {settings['batch_size']}, "
          f"{n_images} images")
    print(f"{'run':<34}{'images/s':>10}{'seconds':>10}")
    print(f"{'dggan trial (space.train)':<34}{n_images / trial_s:>10.0f}{trial_s:>10.1f}")
    print(f"{'plain PyTorch loop':<34}{plain_ips:>10.0f}{n_images / plain_ips:>10.1f}")
    print(f"trial / plain: {n_images / trial_s / plain_ips:.2f}x  (reports: {len(reports)}, states saved: {len(saved)})")


if __name__ == "__main__":
    main()
