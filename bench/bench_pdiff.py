"""p-diff: seconds per stage, and the accuracy / memorisation tables of one trial with their controls.

    python bench/bench_pdiff.py [--budget small] [--dataset mnist5k] [--device auto] [--threads 2]
                                [--set subset=norms:0,1 --set collect=step ...] [--cache DIR]

Runs one pdiff trial the way the search does (``PDiffSpace.train`` then ``score`` through a
TrialContext of plain callables, intermediate quick evaluations on) in the source's setting
(trial 0 of every study: xi_V = 0.001, xi_Z = 0.1, a 4-layer autoencoder) and times: stage 1 cold
(base classifier + K + H checkpoints, in an empty cache: a fresh temporary folder unless
``--cache`` names one) and warm (cache hit), the autoencoder, the latent DDPM, sampling the M
generated models and stage 3 (selection on train, report on held-out, the controls). Prints the
device, the stage times (wall and process CPU seconds: on a shared machine the CPU seconds are
the steadier number) and markdown tables: accuracies (originals, their ensemble, held-out
checkpoints, generated, noise-added, fine-tuned) and memorisation (each group's nearest IoU to the
K originals and parameter distance), with the verdict the leaderboard shows.
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
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                    help="a pdiff option, as genas search --set")
    ap.add_argument("--cache", default=None, help="stage-1 cache folder [default: a fresh temporary one]")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["GENAS_CACHE"] = args.cache or tempfile.mkdtemp(prefix="bench-pdiff-")  # stage 1 cold, then warm

    from genas.data import load_dataset
    from genas.search.objective import resolve_device
    from genas.spaces import TrialContext, get_space
    from genas.spaces.pdiff.checkpoints import collect
    from genas.spaces.pdiff.evaluate import verdict
    from genas.spaces.pdiff.splits import train_heldout

    device = resolve_device(args.device)
    space, data = get_space("pdiff"), load_dataset(args.dataset)
    b = space.budget(args.budget)
    options = space.resolve_options(dict(item.split("=", 1) for item in args.settings))
    space.check(data, options, budget=args.budget)
    settings = space.settings(args.budget, options)
    (source,) = space.initial_trials(args.budget)
    config = {**source, "latent_channels": 4, "ae_channels": b["ae_channels"][1 if len(b["ae_channels"]) > 1 else 0],
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

    attrs: dict = {}
    ctx = TrialContext(dataset=data, budget=args.budget, device=device, seed=args.seed, options=options,
                       reporter=lambda step, m: None, progress=progress, attr_setter=attrs.__setitem__)
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

    k, h, m, n_held = settings["checkpoints"], settings["heldout"], metrics, len(train_heldout(data)[1])
    print(f"device: {device_name(device)} · budget {args.budget} · dataset {args.dataset} · arch {settings['arch']}/"
          f"{settings['subset']} · collect {settings['collect']} · D={generator.classifier.dim} · K={k} · H={h}"
          f" · M={settings['models']} · load average {os.getloadavg()[0]:.1f}")
    print(f"config: {config}")
    print("\n| stage | wall s | CPU s |\n|---|---|---|")
    for label, a, z in [(f"1 · base + {k} + {h} checkpoints (cold)", "start", "stage1"), ("1 · cache hit", "score", "warm"),
                        ("2 · autoencoder", "stage1", "ae"), ("2 · latent DDPM (incl. quick evals)", "ae", "ddpm"),
                        (f"3 · sample {settings['models']} models", "ddpm", "sample"),
                        ("3 · score (sampling, selection, held-out, controls incl. fine-tuning)", "sample", "score")]:
        print(f"| {label} | {marks[z][0] - marks[a][0]:.1f} | {marks[z][1] - marks[a][1]:.1f} |")

    def row(label: str, key: str) -> str:
        if f"{key}_best" not in m:
            return f"| {label} | – | | | | |"
        return (f"| {label} | {m[key + '_best']:.4f} | {m[key + '_mean']:.4f} | {m[key + '_median']:.4f} | "
                f"{m[key + '_min']:.4f} | {m[key + '_max']:.4f} |")

    print(f"\n| held-out accuracy ({n_held} images) | selected on train | mean | median | min | max |\n|---|---|---|---|---|---|")
    print(row(f"{k} originals (training checkpoints)", "orig"))
    print(f"| ensemble of the originals | {m['ensemble_acc']:.4f} | | | | |")
    print(row(f"{h} held-out checkpoints (never shown to the autoencoder)", "heldout_ckpt"))
    print(row(f"{settings['models']} generated (p-diff)", "acc"))
    print(row(f"{b['noise_models']} noise-added (0.01–0.1, on the nearest originals)", "noise"))
    print(row(f"{b['finetune_models']} fine-tuned ({b['finetune_steps']} steps from the nearest originals)", "finetune"))
    spread = round((m["orig_max"] - m["orig_min"]) * n_held)
    print(f"\noriginals' held-out accuracies span {spread} image(s) of {n_held}; "
          f"{round(m['distinct_orig'] * k)} of {k} originals and {round(m['distinct_generated'] * settings['models'])} "
          f"of {settings['models']} generated models have distinct prediction patterns")
    print("\n| nearest original (of the K) | IoU of wrong predictions | identical mistakes | distance (NN spacings) |"
          "\n|---|---|---|---|")
    g = lambda key: f"{m[key]:.3f}" if key in m else "–"  # noqa: E731
    print(f"| generated | {g('iou_gen_nearest_orig')} | {g('share_gen_identical_orig')} | {g('dist_gen_nearest_orig')} |")
    print(f"| held-out checkpoints | {g('iou_heldout_nearest_orig')} | {g('share_heldout_identical_orig')} | "
          f"{g('dist_heldout_nearest_orig')} |")
    print(f"| originals, leave one out | {g('iou_orig_nearest_orig')} | | 1 (by definition) |")
    print(f"| noise-added | {g('iou_noise_nearest_orig')} | | {g('dist_noise_nearest_orig')} |")
    print(f"| fine-tuned | {g('iou_finetune_nearest_orig')} | | {g('dist_finetune_nearest_orig')} |")
    print(f"\nP(a generated model is nearer to the originals than a held-out checkpoint) = {g('p_gen_nearer_than_ckpt')}"
          f" → verdict: **{verdict(m)}**")
    print(f"mean IoU: originals {m['iou_orig_orig']:.3f}, generated {m['iou_gen_gen']:.3f}, generated-originals "
          f"{m['iou_gen_orig']:.3f}; distance to the originals' mean: generated {m['dist_gen_orig_mean']:.2f}, "
          f"originals {m['dist_orig_orig_mean']:.2f}")


if __name__ == "__main__":
    main()
