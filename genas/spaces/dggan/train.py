"""One DGGAN candidate: take the parent's networks, apply the growth action, train, hand back.

1. A root builds the minimal networks; a child rebuilds its parent's architecture with the
   action applied and inherits every existing weight (G, D and the EMA G), new layers random.
2. New parts fade in over the first ``fade`` share of the child's images (at alpha 0 the child
   computes exactly what its parent did; a new resolution blends the real images too).
3. The shared loop trains G against D on the child's images, with a fresh optimiser: every
   child changes the architecture, so the parent's moment estimates would not fit it. The EMA G
   carries the parent's average on (its ramp-up counts the lineage's images), with a half-life of
   at most a tenth of the child's images (``half_life_within``).
4. The old paths are dropped and the full state saved, for the children of the next generation.
"""
from __future__ import annotations

from genas.errors import GenasError
from genas.spaces.base import TrialContext
from genas.spaces.dggan.actions import apply_action
from genas.spaces.gan import EMA, Fade, Recipe, half_life_within, images_on, prepare, real_at, train_gan
from genas.spaces.gan.grown import GrownGenerator, Nets, finalize, inherit, resolution_of, root_arch, validate_arch
from genas.spaces.progress import Progress


class DGGANGenerator(GrownGenerator):
    space_name = "dggan"


def build(action: dict, parent: tuple[dict, dict] | None, latent: int, ctx: TrialContext) -> tuple[Nets, dict]:
    """The candidate's networks (on ctx.device) and what its lineage had seen before it."""
    if action["action"] == "root":
        arch = root_arch(latent, ctx.dataset.channels, int(action["channels"]), int(action["kernel"]))
        return prepare(Nets(arch), ctx.device), {"lineage_images": 0}
    if parent is None:
        raise GenasError("the candidate grows a parent whose state is missing; it was not saved (failed or deleted run)")
    parent_config, tensors = parent
    if parent_config.get("space") != "dggan":
        raise GenasError(f"parent state is for space {parent_config.get('space')!r}, not 'dggan'")
    parent_arch = validate_arch(parent_config.get("arch"))
    if parent_arch["image_channels"] != ctx.dataset.channels:
        raise GenasError(f"the lineage has {parent_arch['image_channels']}-channel images but dataset "
                         f"{ctx.dataset.name} has {ctx.dataset.channels}; start a new study for this dataset")
    arch, fades = apply_action(parent_arch, action)
    if resolution_of(arch) > ctx.dataset.resolution:
        raise GenasError(f"cannot grow beyond the dataset resolution {ctx.dataset.resolution}")
    return prepare(inherit(tensors, arch, fades), ctx.device), {"lineage_images": parent_config.get("lineage_images", 0)}


def train(nets: Nets, recipe: Recipe, n_images: int, *, fade_share: float, ema_half_life: float,
          lineage_images: int, reports: int, ctx: TrialContext) -> Nets:
    """Steps 2-4 on ``n_images`` images; returns the fade-free networks."""
    fade = None
    if any(nets.fades.values()):
        fade = Fade(int(n_images * fade_share), nets.set_alpha, blend_real=nets.fades["g"] == "stage")
    ema = EMA(nets.G, half_life_within(n_images, ema_half_life), target=nets.G_ema, rampup=0.5)
    images = real_at(images_on(ctx), resolution_of(nets.arch))
    train_gan(nets.G, nets.D, ema, images, recipe, n_images, ctx, Progress(ctx, n_images, reports),
              snapshot=lambda: DGGANGenerator(nets.arch, nets.G_ema), fade=fade, ema_images=lineage_images)
    return finalize(nets)
