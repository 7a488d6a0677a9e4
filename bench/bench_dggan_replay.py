"""Re-train one dggan candidate from its parent's saved state, with one thing changed.

    python bench/bench_dggan_replay.py --home OUT/homes/mnist5k-s1 --parent 12 \\
        --action grow:32:5 --generation 4 --change r1_gamma=10

A finished study (a ``bench_quality.py`` home, or any genas home) keeps every candidate's
training state. This loads the parent's, applies ``--action`` (``kind:channels:kernel``) and
trains it at ``small`` on the study's dataset as the search would (the generation's images, the
parent's learning rate), with ``--change`` applied: ``r1_gamma=``, ``fade=`` (share of the
images), ``lr_scale=`` (times the parent's), ``augment=`` (DiffAugment policy, ``/`` between
parts), ``ema_share=`` (the EMA half-life's cap as a share of the images; 1e9 lifts it). Every
fifth of the images it prints D's mean scores and how many digits G and the EMA generator spread
over (``bench_quality.digit_classes``, 1,000 samples); at the end the EMA generator's SWD,
``fid_digitnet`` and digits, and a grid in ``--grid``.
"""
from __future__ import annotations

import argparse
import os
import time

import optuna
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", required=True, help="the genas home that holds the study")
    p.add_argument("--study", default="dggan-mnist5k")
    p.add_argument("--parent", type=int, required=True, help="the parent trial's number")
    p.add_argument("--action", default="grow:32:5", help="kind:channels:kernel")
    p.add_argument("--generation", type=int, default=4)
    p.add_argument("--change", default="", help="e.g. r1_gamma=10, lr_scale=2.74, augment=translation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--grid", default="")
    args = p.parse_args()

    import genas.spaces.dggan.space as dggan_space
    import genas.spaces.dggan.train as dggan_train
    import genas.spaces.gan.ema as kit_ema
    from bench_quality import digit_classes, machine, use_home
    from genas.data import load_dataset, to_uint8
    from genas.evaluators import evaluate
    from genas.images import save_grid
    from genas.search.objective import Objective
    from genas.spaces import TrialContext, get_space

    if args.threads:
        torch.set_num_threads(args.threads)
    use_home(args.home)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args.study, storage=f"sqlite:///{os.path.abspath(args.home)}/optuna.db")
    parent = next(t for t in study.get_trials(deepcopy=False) if t.number == args.parent)
    state = Objective.load_trial_state(study, args.parent)
    data = load_dataset(study.user_attrs.get("dataset", args.study.split("-", 1)[1]))
    budget = dggan_space.BUDGETS["small"]
    budget["reports"] = 5
    kind, channels, kernel = args.action.split(":")
    lr, options = parent.params["lr"], {}
    if args.change:
        key, _, value = args.change.partition("=")
        if key in ("r1_gamma", "fade"):
            budget[key] = float(value)
        elif key == "lr_scale":
            lr *= float(value)
        elif key == "augment":
            options["augment"] = value.replace("/", ",")
        elif key == "ema_share":
            kit_ema.SHARE_OF_SPAN = float(value)
        else:
            raise SystemExit(f"unknown --change {key!r}: use r1_gamma, fade, lr_scale, augment or ema_share")

    live: dict[str, torch.nn.Module] = {}
    train_gan = dggan_train.train_gan

    def keep_g(G, *rest, **kw):  # noqa: ANN001, ANN202 - the loop's own signature
        live["G"] = G
        return train_gan(G, *rest, **kw)

    dggan_train.train_gan = keep_g

    def quick(generator) -> dict:  # noqa: ANN001
        with torch.no_grad():
            z = torch.randn(1_000, live["G"].latent, generator=torch.Generator().manual_seed(0))
            spread_g = digit_classes(to_uint8(live["G"](z)))
        return {"classes_g": spread_g, "classes_ema": digit_classes(generator.sample(1_000, seed=0))}

    start = time.perf_counter()

    def report(step: int, m: dict) -> None:
        print(f"  {step:6,d} images: alpha {m['alpha']:.2f} D(real) {m['d_real']:+.2f} D(fake) {m['d_fake']:+.2f} "
              f"digits G {m['classes_g']:.2f} EMA {m['classes_ema']:.2f} ({time.perf_counter() - start:.0f} s)",
              flush=True)

    space = get_space("dggan")
    ctx = TrialContext(dataset=data, budget="small", device=torch.device("cpu"), seed=args.seed,
                       options=space.resolve_options(options), reporter=report, quick_evaluator=quick,
                       parent_loader=lambda: state)
    print(f"machine: {machine()}; {args.study} trial {args.parent} -> {args.action} at lr {lr:.3g}, "
          f"change: {args.change or 'none'}", flush=True)
    config = {"action": kind, "channels": int(channels), "kernel": int(kernel), "lr": lr,
              "generation": args.generation, "parent": args.parent}
    generator = space.train(config, ctx)
    fake = generator.sample(1_000, seed=0)
    scores = evaluate(fake, data, ["swd", "fid_digitnet"], n_real=1_000, seed=0)
    print(f"{args.change or 'as searched'}: SWD {scores['swd']:.1f}, fid_digitnet {scores['fid_digitnet']:.0f}, "
          f"digits {digit_classes(fake):.2f} ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.grid:
        save_grid(generator.sample(64, seed=0), args.grid)


if __name__ == "__main__":
    main()
