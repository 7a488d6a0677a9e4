"""p-diff: seconds per stage and the accuracy / memorisation table of one trial.

    python bench/bench_pdiff.py [--budget small] [--dataset mnist5k] [--device auto] [--threads 2]

Runs one pdiff trial the way the search does (``PDiffSpace.train`` then ``score`` through a
TrialContext of plain callables, intermediate quick evaluations on) with the source's noise
settings (xi_V = 0.001, xi_Z = 0.1) and K = the budget's K_max, and times: stage 1 cold (base
classifier + K_max checkpoints, in a fresh cache) and warm (cache hit), the autoencoder, the
latent DDPM, sampling the M generated models and stage 3 (selection on train, report on held-out).
Prints the device, the stage times (wall and process CPU seconds: on a shared machine the CPU
seconds are the steadier number) and two markdown tables: accuracies (originals, their
ensemble, generated, noise-added) and memorisation (IoU of wrong predictions, parameter distances).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor() or "CPU")
    return f"{model}, {torch.get_num_threads()} thread(s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="small")
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (ignored on CUDA)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["GENAS_CACHE"] = tempfile.mkdtemp(prefix="bench-pdiff-")  # stage 1 cold, then warm

    from genas.data import load_dataset
    from genas.search.objective import resolve_device
    from genas.spaces import TrialContext, get_space
    from genas.spaces.pdiff.checkpoints import collect

    device = resolve_device(args.device)
    space, data = get_space("pdiff"), load_dataset(args.dataset)
    b = space.budget(args.budget)
    settings = space.settings(args.budget, {})
    config = {"k": max(settings["ks"]), "noise_v": True, "xi_v": 1e-3, "noise_z": True, "xi_z": 0.1, "latent_channels": 4,
              "ae_depth": 3, "ae_channels": b["ae_channels"][1 if len(b["ae_channels"]) > 1 else 0],
              "ddpm_steps": max(b["ddpm_steps"]), "ddpm_lr": 1e-3}
    ae_total = b["ae_steps"] * b["batch_size"]
    marks: dict[str, tuple[float, float]] = {}  # name -> (wall, process CPU) seconds since start

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def mark(name: str) -> None:
        sync()
        marks[name] = (time.perf_counter(), time.process_time())

    def progress(done: int, total: int) -> None:
        if done >= ae_total and "ae" not in marks:
            mark("ae")

    ctx = TrialContext(dataset=data, budget=args.budget, device=device, seed=args.seed, options=space.resolve_options({}),
                       reporter=lambda step, m: None, progress=progress)
    mark("start")
    collect(data, space.recipe(args.budget, settings), device)
    mark("stage1")
    print(f"stage 1 (cold): {marks['stage1'][0] - marks['start'][0]:.1f} s", flush=True)
    generator = space.train(config, ctx)
    mark("ddpm")
    generator.sample(settings["models"], seed=args.seed)
    mark("sample")
    metrics = space.score(generator, list(space.own_metrics), ctx)
    mark("score")
    collect(data, space.recipe(args.budget, settings), device)
    mark("warm")

    print(f"device: {device_name(device)} · budget {args.budget} · dataset {args.dataset} · arch {settings['arch']}/"
          f"{settings['subset']} · D={generator.classifier.dim} · K={config['k']} · M={settings['models']}"
          f" · load average {os.getloadavg()[0]:.1f}")
    print(f"config: {config}")
    print("\n| stage | wall s | CPU s |\n|---|---|---|")
    for label, a, z in [("1 · base + checkpoints (cold)", "start", "stage1"), ("1 · cache hit", "score", "warm"),
                        ("2 · autoencoder", "stage1", "ae"), ("2 · latent DDPM (incl. quick evals)", "ae", "ddpm"),
                        (f"3 · sample {settings['models']} models", "ddpm", "sample"),
                        ("3 · score (sampling, selection, held-out, baselines, memorisation)", "sample", "score")]:
        print(f"| {label} | {marks[z][0] - marks[a][0]:.1f} | {marks[z][1] - marks[a][1]:.1f} |")
    m = metrics
    print("\n| held-out accuracy | selected on train | mean | median | max |\n|---|---|---|---|---|")
    print(f"| {config['k']} originals | {m['orig_best']:.4f} | {m['orig_mean']:.4f} | {m['orig_median']:.4f} | {m['orig_max']:.4f} |")
    print(f"| ensemble of the originals | {m['ensemble_acc']:.4f} | | | |")
    print(f"| {settings['models']} generated (p-diff) | {m['acc_best']:.4f} | {m['acc_mean']:.4f} | {m['acc_median']:.4f} | {m['acc_max']:.4f} |")
    print(f"| {b['noise_models']} noise-added (0.01-0.1) | {m['noise_best']:.4f} | {m['noise_mean']:.4f} | {m['noise_median']:.4f} | {m['noise_max']:.4f} |")
    print("\n| memorisation | value |\n|---|---|")
    for key in ("iou_orig_orig", "iou_gen_gen", "iou_gen_orig", "iou_gen_nearest_orig", "iou_noise_nearest_orig",
                "dist_gen_nearest_orig", "dist_gen_orig_mean", "dist_orig_orig_mean", "dist_noise_nearest_orig", "share_gen_within_orig_spacing",
                "distinct_generated"):
        print(f"| {key} | {m[key]:.4f} |")


if __name__ == "__main__":
    main()
