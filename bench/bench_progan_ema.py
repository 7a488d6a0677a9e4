"""progan's colour through a trial: channel means of G and of the EMA generator, and the final SWD.

    python bench/bench_progan_ema.py --dataset photos --share 1.0   # the 2,000-image half-life (before)
    python bench/bench_progan_ema.py --dataset photos               # capped at a tenth of a phase (now)

Trains progan's trial 0 at ``small`` (seed 0, one torch thread) and, every 1,000 images, prints
the channel means (0-255) of 500 samples of G and of the EMA generator from a fixed z; at the end
the channel means and the SWD of 1,000 samples of the registered model (the EMA generator).
``--share`` is the cap on the EMA's half-life as a share of a phase (``genas.spaces.gan.ema.SHARE_OF_SPAN``).
"""
from __future__ import annotations

import argparse

import torch

import genas.spaces.gan.ema as kit_ema
import genas.spaces.progan.space as progan_space
import genas.spaces.progan.train as progan_train
from genas.data import load_dataset, to_uint8
from genas.evaluators import evaluate
from genas.spaces import TrialContext, get_space


def channel_means(images: torch.Tensor) -> list[float]:
    """Per-channel means in 0-255 of a uint8 batch, or of a float batch in [-1, 1] as saved."""
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    return [round(v, 1) for v in images.float().mean((0, 2, 3)).tolist()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="photos")
    p.add_argument("--share", type=float, default=kit_ema.SHARE_OF_SPAN)
    p.add_argument("--half-life", type=float, default=None, help="the budget's EMA half-life (default: small's)")
    p.add_argument("--images", type=int, default=0, help="images per trial (default: small's 20,000)")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(args.dataset)
    budget = progan_space.BUDGETS["small"]
    budget["reports"] = max(1, (args.images or budget["images_per_trial"]) // 1_000)
    if args.half_life is not None:
        budget["ema_half_life"] = args.half_life
    kit_ema.SHARE_OF_SPAN = args.share
    print(f"{args.dataset}: data means {channel_means(data.uint8())}; half-life {budget['ema_half_life']:g} "
          f"capped at {args.share:g} of a phase", flush=True)

    current: dict[str, torch.nn.Module] = {}
    train_gan = progan_train.train_gan

    def keep_g(G, *rest, **kw):  # noqa: ANN001, ANN202 - the loop's own signature
        current["G"] = G
        return train_gan(G, *rest, **kw)

    def quick(generator) -> dict:  # noqa: ANN001
        G = current["G"]
        z = torch.randn(500, G.latent, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            live, averaged = G(z), generator.net(z)
        side = live.shape[-1]
        print(f"  {side:>2}x{side:<2} alpha {G.alpha:.2f}: G {channel_means(live)}  EMA {channel_means(averaged)}",
              flush=True)
        return {}

    progan_train.train_gan = keep_g
    space = get_space("progan")
    ctx = TrialContext(dataset=data, budget="small", device=torch.device("cpu"), seed=0,
                       options=space.resolve_options({"images": args.images}), quick_evaluator=quick)
    generator = space.train(space.initial_trials("small")[0], ctx)
    samples = generator.sample(1_000, seed=0)
    swd = evaluate(samples, data, ["swd"], n_real=1_000, seed=0)["swd"]
    print(f"final: means {channel_means(samples)}, swd {swd:.1f}", flush=True)


if __name__ == "__main__":
    main()
