"""Training throughput of a san trial vs a plain PyTorch loop on the same networks; the MSE-weight study.

    python bench/bench_san.py [--budget small] [--dataset mnist5k] [--device auto] [--images N] [--threads T]
    python bench/bench_san.py --mse-study [--images N] ...   # SWD and diversity for mse_weight 0 / 0.1 / 1
    python bench/bench_san.py --one [--set KEY=VALUE ...] [--seeds S] ...   # one config: SWD, artifacts, grid
    ... --reading adversarial|cooperative                     # which reading trains (default adversarial)

Throughput: (a) ``SANSpace.train`` of one trial through a TrialContext of plain callables (EMA,
progress, the evenly spaced reports with their diversity probe, divergence checks, the saved
state: everything genas does except the evaluators), and (b) a bare loop over the same G and R,
same losses (the ``--reading``'s), same two Adam steps, same kernel averaging, same batch, with no
EMA, reports or checks.
Prints a markdown table row: machine, budget, img/s of both and the ratio (target >= 0.8x).

``--mse-study`` trains the same config with each MSE weight (the source's unpaired MSE(G(z), X))
and prints the final SWD (genas's evaluator, eval_samples images) and the per-pixel sample std
over the batch ("diversity"; the real images' value beside it).

``--one`` trains one config (:data:`ONE` with the ``--set`` values, e.g. a study's champion's
params, ``shortcut=nearest`` for the shortcut genas used before bilinear) from trial seed 0 ..
S-1 (or ``--seed N`` only: trial N of a seed-0 study), and prints its SWD and ``bench_artifacts.py``'s numbers (periodic peaks, detail per scale);
``--grid PREFIX`` saves each seed's 64 samples as ``PREFIX-s<seed>.png``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from genas.data import load_dataset
from genas.search.objective import resolve_device
from genas.spaces import TrialContext, get_space
from genas.spaces.gan import images_on
from genas.spaces.san.losses import (diversity, latent_gradient_penalty, latent_wasserstein, paired_latent_mse,
                                     sliced_wasserstein, unpaired_mse)
from genas.spaces.san.networks import make_arch
from genas.spaces.san.train import Nets

CONFIG = {"lr": 1e-3, "weight_decay": 1e-5, "lam": 0.5, "mse_weight": 0.1, "latent_mse_weight": 1.0,
          "gp_weight": 10.0, "width": 32, "latent": 64, "attention": True, "rpa": True, "rpa_ratio": 0.5,
          "ado": True, "ado_threshold": 0.1, "reading": "adversarial"}
#: --one's starting point: every module off (what the faces champion of the twentieth session had)
ONE = {**CONFIG, "mse_weight": 0.0, "width": 16, "attention": False, "rpa": False, "ado": False,
       "shortcut": "bilinear", "upsample_kernel": "resize"}


def plain_loop(arch: dict, images: torch.Tensor, device: torch.device, config: dict, batch: int,
               n_images: int) -> float:
    """The same networks, losses and steps written as a bare loop; returns images/s."""
    cuda = device.type == "cuda"
    nets = Nets(arch).to(device)
    G, R = nets.G, nets.R
    if cuda:
        G, R = G.to(memory_format=torch.channels_last), R.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(G.parameters(), lr=config["lr"], betas=(0.5, 0.99), weight_decay=config["weight_decay"])
    opt_r = torch.optim.Adam(R.parameters(), lr=config["lr"], betas=(0.5, 0.99), weight_decay=config["weight_decay"])
    pairs = [(g.conv.weight, r.conv.weight) for gs, rs in zip(G.stages, R.stages) for g, r in zip(gs.blocks, rs.blocks)]
    lam, w, wz, gp = config["lam"], config["mse_weight"], config["latent_mse_weight"], config["gp_weight"]
    seen, start = 0, time.perf_counter()
    while seen < n_images:
        real = images[torch.randint(images.shape[0], (batch,), device=images.device)].to(device)
        z = torch.randn(batch, arch["latent"], device=device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            fake = G(z)
            fake_latent = R(fake)
            shared = wz * paired_latent_mse(fake_latent, z)
            if config["reading"] == "cooperative":
                loss = (sliced_wasserstein(fake_latent, z) + w * unpaired_mse(fake, real)
                        + sliced_wasserstein(R(real), z) + shared)
            else:
                distance = latent_wasserstein(R(real), fake_latent)
                loss_g = distance + w * unpaired_mse(fake, real) + shared
                loss_r = -distance + gp * latent_gradient_penalty(R, real, fake) + shared
        opt_g.zero_grad(set_to_none=True)
        opt_r.zero_grad(set_to_none=True)
        if config["reading"] == "cooperative":
            loss.backward()
        else:
            loss_g.backward(inputs=list(G.parameters()), retain_graph=True)
            loss_r.backward(inputs=list(R.parameters()))
        opt_g.step()
        opt_r.step()
        with torch.no_grad():
            for g, r in pairs:
                mixed = lam * g + (1 - lam) * r
                g.copy_(mixed)
                r.copy_(mixed)
        seen += batch
    if cuda:
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} thread(s)"


def throughput(args, space, data, device) -> None:
    b = space.budget(args.budget)
    n_images = args.images or b["images_per_trial"]
    b["images_per_trial"] = n_images
    space.budgets = {**space.budgets, args.budget: b}  # instance-level override for --images
    config = {**CONFIG, "width": max(b["widths"]), "latent": max(b["latents"]), "reading": args.reading}
    ctx = TrialContext(dataset=data, budget=args.budget, device=device, seed=0, reporter=lambda s, m: None)
    arch = make_arch(data.resolution, data.channels, config["latent"], config["width"], attention=True, rpa=True,
                     rpa_ratio=0.5, ado=True, ado_threshold=0.1)
    images = images_on(ctx)
    plain_loop(arch, images, device, config, b["batch_size"], b["batch_size"] * 4)  # warm-up
    rows = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        space.train(config, ctx)
        if device.type == "cuda":
            torch.cuda.synchronize()
        trial_ips = n_images / (time.perf_counter() - start)
        plain_ips = plain_loop(arch, images, device, config, b["batch_size"], n_images)
        rows.append((trial_ips, plain_ips))
    trial_ips, plain_ips = max(r[0] for r in rows), max(r[1] for r in rows)  # best of the repeats, each side
    print(f"{args.reading} reading; arch: {len(arch['channels'])} modules {arch['channels']}, "
          f"latent {arch['latent']}, batch {b['batch_size']}, {n_images} images, best of {args.repeats}")
    print("| machine | budget | dataset | san trial img/s | plain loop img/s | ratio |")
    print("|---|---|---|---|---|---|")
    print(f"| {machine(device)} | {args.budget} | {args.dataset} {data.resolution}x{data.resolution} | "
          f"{trial_ips:.0f} | {plain_ips:.0f} | {trial_ips / plain_ips:.2f}x |")


def mse_study(args, space, data, device) -> None:
    from genas.evaluators import evaluate

    b = space.budget(args.budget)
    if args.images:
        b["images_per_trial"] = args.images
        space.budgets = {**space.budgets, args.budget: b}
    n = b["eval_samples"]
    real_div = diversity(data.images[torch.randperm(data.images.shape[0],
                                                    generator=torch.Generator().manual_seed(0))[:256]])
    print(f"{args.dataset}, budget {args.budget}, {b['images_per_trial']} images a run, {machine(device)}; "
          f"real diversity {real_div:.3f}")
    distance = "loss_w" if args.reading == "adversarial" else "loss_gd"
    print(f"| mse_weight | seed | swd | diversity | {distance} | loss_gi | loss_latent | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for w in args.weights:
        for seed in range(args.seeds):
            reports: list = []
            ctx = TrialContext(dataset=data, budget=args.budget, device=device, seed=seed,
                               reporter=lambda s, m: reports.append(m))
            start = time.perf_counter()
            gen = space.train({**CONFIG, "mse_weight": w, "width": max(b["widths"]), "latent": max(b["latents"]),
                               "reading": args.reading}, ctx)
            seconds = time.perf_counter() - start
            swd = evaluate(gen.sample(n, seed=seed), data, ["swd"], device=device, n_real=n, seed=0)["swd"]
            last = reports[-1]
            print(f"| {w:g} | {seed} | {swd:.3f} | {last['diversity']:.3f} | {last[distance]:.3f} | "
                  f"{last['loss_gi']:.3f} | {last['loss_latent']:.3f} | {seconds:.0f} |", flush=True)


def one(args, space, data, device) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_artifacts import measure

    from genas.data import from_uint8
    from genas.evaluators import evaluate
    from genas.images import save_grid

    config = dict(ONE)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in config:
            raise SystemExit(f"--set {item}: {key} is not a san config key ({', '.join(config)})")
        config[key] = value if key in ("reading", "shortcut", "upsample_kernel") else json.loads(value)
    n = space.budget(args.budget)["eval_samples"]
    real = data.images[torch.randperm(data.images.shape[0], generator=torch.Generator().manual_seed(0))[:n]]
    print(f"{args.dataset}, budget {args.budget}, {machine(device)}; {json.dumps(config)}")
    for seed in [args.seed] if args.seed is not None else range(args.seeds):
        ctx = TrialContext(dataset=data, budget=args.budget, device=device, seed=seed, reporter=lambda s, m: None)
        start = time.perf_counter()
        gen = space.train(config, ctx)
        seconds = time.perf_counter() - start
        fake = gen.sample(n, seed=seed)
        swd = evaluate(fake, data, ["swd"], device=device, n_real=n, seed=0)["swd"]
        numbers = measure(from_uint8(fake), real)
        if args.grid:
            save_grid(fake[:64], f"{args.grid}-s{seed}.png")
        print(f"| {seed} | {swd:.1f} | " + " | ".join(f"{k} {v:.2f}" for k, v in numbers.items())
              + f" | {seconds:.0f} s |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--budget", default="small")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--device", default="auto")
    p.add_argument("--images", type=int, default=None, help="images per timed run (default: the budget's)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--reading", default="adversarial", choices=("adversarial", "cooperative"))
    p.add_argument("--mse-study", action="store_true")
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 1.0])
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--one", action="store_true")
    p.add_argument("--seed", type=int, default=None, help="--one: this trial seed only (a study's trial N: N)")
    p.add_argument("--set", nargs="*", default=[], help="--one: KEY=VALUE config overrides")
    p.add_argument("--grid", default=None, help="--one: save each seed's 64 samples as PREFIX-s<seed>.png")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    space, data = get_space("san"), load_dataset(args.dataset)
    (one if args.one else mse_study if args.mse_study else throughput)(args, space, data, device)


if __name__ == "__main__":
    main()
