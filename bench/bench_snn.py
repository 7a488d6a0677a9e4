"""Swarm steps per second of an snn trial vs a plain PyTorch loop doing the same update.

    python bench/bench_snn.py [--agents 1000] [--steps 20] [--dataset image:astronaut@64] [--device auto]

Times (a) ``SNNSpace.train`` of one trial (the swarm module, progress, evenly spaced reports with
the quick metrics, divergence checks: all of genas's machinery except the final evaluators)
through a TrialContext of plain callables, and (b) a bare loop written out here with the same
tensors and the same update (attention, denoise, PSO + Adam moments, noise, clip, fitness with
the same perceptual network), with no reports or checks. Both run ``--agents`` agents on the
target for ``--steps`` steps of the schedule. Prints steps/s, agent-steps/s and the ratio.
On CUDA the perceptual network runs under bf16 autocast; the swarm tensors stay float32.
"""
from __future__ import annotations

import argparse
import time

import torch

from genas.data import load_dataset
from genas.search.objective import resolve_device
from genas.spaces import TrialContext, get_space
from genas.spaces.snn.attention import multi_head_attention, pixel_weights
from genas.spaces.snn.perceptual import Perceptual


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(config: dict, target: torch.Tensor, perceptual: Perceptual | None, device: torch.device,
               chunk: int) -> float:
    """The same swarm, written as one flat loop; returns steps/s."""
    g = torch.Generator(device=device).manual_seed(0)
    shape = (config["agents"], *target.shape[1:])
    x = torch.randn(shape, generator=g, device=device).clamp_(-1, 1)
    vel = torch.randn(shape, generator=g, device=device)
    m, v = torch.zeros(shape, device=device), torch.zeros(shape, device=device)
    weight = config["perceptual_weight"] if config["perceptual"] else 0.0
    feats = perceptual.features(target) if weight > 0 else None

    def fit(pos: torch.Tensor) -> torch.Tensor:
        f = (pos - target).pow(2).flatten(1).mean(1)
        if feats is None:
            return f
        d = torch.cat([perceptual.distance(pos[i:i + chunk], feats) for i in range(0, pos.shape[0], chunk)])
        return f + weight * d

    best, best_f = x.clone(), fit(x)
    betas = torch.linspace(config["beta_start"], config["beta_end"], config["steps"], device=device)
    sync(device)
    start = time.perf_counter()
    for t in range(config["steps"]):
        beta = betas[t]
        rate = beta * pixel_weights(multi_head_attention(x, target, config["heads"])) if config["attention"] else beta
        denoised = x - torch.clamp(rate, max=1.0) * (x - target)
        lead = best[best_f.argmin()]
        vel = (config["inertia"] * vel + config["c1"] * torch.rand(shape, generator=g, device=device) * (best - x)
               + config["c2"] * torch.rand(shape, generator=g, device=device) * (lead - x))
        m = 0.9 * m + 0.1 * vel
        v = 0.999 * v + 0.001 * vel * vel
        move = beta * (m / (1 - 0.9 ** (t + 1))) / ((v / (1 - 0.999 ** (t + 1))).sqrt() + 1e-8)
        z = torch.randn(shape, generator=g, device=device)
        x = (denoised + move + config["noise_scale"] * beta.sqrt() * z).clamp(-1, 1)
        f = fit(x)
        better = f < best_f
        best = torch.where(better.view(-1, 1, 1, 1), x, best)
        best_f = torch.minimum(f, best_f)
    sync(device)
    return config["steps"] / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--dataset", default="image:astronaut@64")
    p.add_argument("--budget", default="full", help="sets the perceptual resolution, chunk and report count")
    p.add_argument("--scales", type=int, default=2)
    p.add_argument("--no-perceptual", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    space = get_space("snn")
    b = space.budget(args.budget)
    data = load_dataset(args.dataset)
    config = {"agents": args.agents, "steps": args.steps, "beta_start": 0.1, "beta_end": 0.002, "inertia": 0.7,
              "c1": 1.5, "c2": 1.5, "attention": True, "heads": 4, "noise_scale": 1.0,
              "perceptual": not args.no_perceptual, "perceptual_weight": 0.1, "scales": args.scales}
    reports: list = []
    ctx = TrialContext(dataset=data, budget=args.budget, device=device, seed=0,
                       reporter=lambda s, m: reports.append((s, m)))
    target = data.images[:1].to(device)
    perceptual = Perceptual.random(args.scales, b["perceptual_resolution"]).to(device)

    warm = {**config, "steps": 2}  # warm-up: cudnn autotune, allocator, timm import
    plain_loop(warm, target, perceptual, device, b["batch_size"])
    space.train(warm, ctx)
    reports.clear()

    sync(device)
    start = time.perf_counter()
    space.train(config, ctx)
    sync(device)
    trial_s = time.perf_counter() - start
    plain_sps = plain_loop(config, target, perceptual, device, b["batch_size"])

    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    c, h, w = data.images.shape[1:]
    perceptual_text = "off" if args.no_perceptual else f"{args.scales} levels at {b['perceptual_resolution']}px"
    print(f"device: {name}   target: {args.dataset} {c}x{h}x{w}   agents: {args.agents}   steps: {args.steps}   "
          f"perceptual: {perceptual_text}")
    print(f"{'run':<30}{'steps/s':>10}{'agent-steps/s':>15}{'seconds':>10}")
    trial_sps = args.steps / trial_s
    print(f"{'snn trial (space.train)':<30}{trial_sps:>10.2f}{trial_sps * args.agents:>15.0f}{trial_s:>10.1f}")
    print(f"{'plain PyTorch loop':<30}{plain_sps:>10.2f}{plain_sps * args.agents:>15.0f}{args.steps / plain_sps:>10.1f}")
    print(f"ratio (trial / plain): {trial_sps / plain_sps:.2f}x   (reports: {len(reports)})")
    print(f"| {name} | {args.budget} | {args.agents} | {c}x{h}x{w} | {trial_sps:.2f} | {plain_sps:.2f} | "
          f"{trial_sps / plain_sps:.2f}x |")


if __name__ == "__main__":
    main()
