"""ProGAN's schedule (Karras et al. 2018): grow G and D symmetrically, one resolution per phase.

A root at 4x4 (dense + one 3x3 conv in G; minibatch stddev, 3x3 conv and dense in D), then for
every doubling up to the dataset's resolution a new stage of two 3x3 convs in G and two in D,
faded in over the first half of its phase (G, D and the real images blended, as in the paper).
Every phase trains on the same share of the images. Widths: ProGAN's rule scaled to small
images, ``width`` channels up to 16x16, halved at every doubling beyond (never below 8).
"""
from __future__ import annotations

from genas.errors import GenasError
from genas.spaces.base import TrialContext
from genas.spaces.gan import EMA, Fade, Recipe, half_life_within, images_on, prepare, real_at, train_gan
from genas.spaces.gan.grown import GrownGenerator, Nets, add_stage, finalize, inherit, root_arch
from genas.spaces.progress import Progress


class ProGANGenerator(GrownGenerator):
    space_name = "progan"


def width_at(resolution: int, width: int) -> int:
    """ProGAN's channel rule: ``width`` up to 16x16, halved per doubling beyond, at least 8."""
    return max(8, min(width, width * 16 // resolution))


def schedule(resolution: int) -> list[int]:
    """The resolutions ProGAN trains at: 4, 8, ..., the dataset's."""
    if resolution < 4 or resolution & (resolution - 1):
        raise GenasError(f"progan needs a power-of-two resolution >= 4, got {resolution}")
    return [4 * 2 ** i for i in range(resolution.bit_length() - 2)]


def train(config: dict, recipe: Recipe, ema_half_life: float, n_images: int, reports: int,
          ctx: TrialContext) -> tuple[dict, Nets]:
    """The whole schedule on ``n_images`` images; returns the final arch and networks."""
    resolutions = schedule(ctx.dataset.resolution)
    per_phase = max(n_images // len(resolutions), recipe.batch_size)
    progress = Progress(ctx, per_phase * len(resolutions), reports)
    images, width = images_on(ctx), int(config["width"])
    arch = root_arch(int(config["latent"]), ctx.dataset.channels, width_at(4, width), 3)
    nets = prepare(Nets(arch), ctx.device)
    for phase, res in enumerate(resolutions):
        fade = None
        if phase > 0:  # a new stage: two 3x3 convs on top of G, two at the bottom of D
            layers = [{"channels": width_at(res, width), "kernel": 3}] * 2
            arch, fades = add_stage(arch, layers, layers)
            nets = prepare(inherit(nets.tensors(), arch, fades), ctx.device)
            fade = Fade(per_phase // 2, nets.set_alpha, blend_real=True)
        ema = EMA(nets.G, half_life_within(per_phase, ema_half_life), target=nets.G_ema, rampup=0.5)
        train_gan(nets.G, nets.D, ema, real_at(images, res), recipe, per_phase, ctx, progress,
                  snapshot=lambda: ProGANGenerator(arch, nets.G_ema), fade=fade, ema_images=phase * per_phase)
        nets = finalize(nets)
    return arch, nets
