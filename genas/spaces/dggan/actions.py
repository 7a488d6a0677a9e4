"""DGGAN's growth actions, which of them a lineage may take, and how they read.

An action is a plain dict ``{"action", "channels", "kernel"}`` (Optuna params of the trial):

- ``root``: the minimal networks at 4x4 (``channels`` wide, a ``kernel`` conv); generation 0.
- ``train``: no growth, the parent's networks trained on: the control child every parent at the
  dataset's resolution has, so that a growth must beat plain extra training to survive.
- ``g_layer`` / ``d_layer``: one conv more at the top of G / the bottom of D (asymmetric depths).
- ``grow``: double the resolution: a new G stage on top (upsample, then two ``kernel`` convs, as
  ProGAN's block; never 1x1, which could not add detail to the upsampled image) and the matching
  D stage at the bottom. (One conv per new stage trained far worse at equal images: 75 vs 25 SWD
  on mnist5k at 20,000 images in our runs, with mode collapse.)

Grow first: within the study's plan, a lineage below the dataset's resolution only grows (one
``grow`` a generation); the control and the layers come at the dataset's resolution. The plan has
``generations`` = the grows the dataset needs + 1, so its one free generation falls where the
samples are made. When it could fall anywhere, the first generation kept a 4x4 ``train`` or
``+conv`` in all three photos searches and every later generation was a forced grow; growing
first, the two searches that had lost to progan scored SWD 23.8 instead of 34.2 (mnist5k, seed
1) and 118.7 instead of 149.2 (photos, seed 2; bench/README.md). A lineage the plan can no longer
bring to the dataset's resolution has no child; past the plan (``generations_left`` None) every
legal kind is open.
"""
from __future__ import annotations

import numpy as np

from genas.errors import GenasError
from genas.spaces.gan.grown import Fades, NO_FADE, add_d_layer, add_g_layer, add_stage, resolution_of

KINDS = ("root", "train", "g_layer", "d_layer", "grow")
GROWTHS = ("g_layer", "d_layer", "grow")


def grows_to(resolution: int, start: int = 4) -> int:
    """Doublings from ``start`` to ``resolution`` (both powers of two)."""
    return max(resolution // start, 1).bit_length() - 1


def grows_needed(arch: dict, resolution: int) -> int:
    return grows_to(resolution, resolution_of(arch))


def apply_action(arch: dict, action: dict) -> tuple[dict, Fades]:
    """The child arch after one action, and which of its parts fade in."""
    kind, layer = action.get("action"), {"channels": int(action["channels"]), "kernel": int(action["kernel"])}
    if kind == "train":
        return arch, dict(NO_FADE)
    if kind == "g_layer":
        return add_g_layer(arch, layer)
    if kind == "d_layer":
        return add_d_layer(arch, layer)
    if kind == "grow":
        if layer["kernel"] < 3:
            raise GenasError("a grow's conv needs a spatial kernel (3 or more): a 1x1 conv after an upsample "
                             "cannot add detail")
        return add_stage(arch, [layer, dict(layer)], [dict(layer), dict(layer)])
    raise GenasError(f"action {kind!r} cannot continue a lineage; use one of {', '.join(KINDS[1:])}")


def legal_kinds(arch: dict, resolution: int, generations_left: int | None, max_layers: int) -> list[str]:
    """The kinds a child of ``arch`` may take; ``generations_left``: planned generations after it
    (None: past the plan, anything legal)."""
    need = grows_needed(arch, resolution)
    if need > 0 and generations_left is not None:  # grow first
        return ["grow"] if need - 1 <= generations_left else []
    kinds = ["train"]
    if len(arch["g"][-1]) < max_layers:
        kinds.append("g_layer")
    if len(arch["d"][-1]) < max_layers:
        kinds.append("d_layer")
    if need > 0:
        kinds.append("grow")
    return kinds


def channels_at(widths: tuple[int, ...], resolution: int) -> tuple[int, ...]:
    """ProGAN's width rule on each choice: as given up to 16x16, halved per doubling beyond (>= 8).

    A conv costs width^2 x pixels, so a full-width stage at 32x32 or 64x64 would cost 4-16 times
    one at 16x16 for detail that fewer channels carry as well.
    """
    return tuple(sorted({max(8, min(w, w * 16 // resolution)) for w in widths}))


def kernels_at(kernels: tuple[int, ...], resolution: int) -> tuple[int, ...]:
    """The kernel choices as given up to 8x8, none wider than 3x3 beyond.

    Every stage holds two convs, and two stacked 3x3 convs see a 5x5 field at 18/25 of one 5x5's
    cost (VGG's argument); the searched kernel matters where a stage is a few pixels wide. With
    5x5 allowed at 16x16 and 32x32, a small 32x32 lineage cost 3.5-17.2 s per 1,000 images
    depending on its draw (3.5-8.8 without; cpu-2, bench_dggan_stage_cost.py), and the README's
    main job took 21-23 min instead of 7-9 at no better SWD (bench/README.md).
    """
    return tuple(sorted({min(k, 3) for k in kernels})) if resolution > 8 else tuple(kernels)


def child_actions(arch: dict, resolution: int, generations_left: int | None, *, children: int,
                  channels: tuple[int, ...], kernels: tuple[int, ...], max_layers: int,
                  rng: np.random.Generator) -> list[dict]:
    """The control (``train``, when legal) and up to ``children`` distinct growth actions, sampled:
    a kind uniformly among the legal ones, then its width and kernel (``channels`` and
    ``kernels`` by the width and kernel rules at the layer's resolution)."""
    kinds = legal_kinds(arch, resolution, generations_left, max_layers)
    top = arch["g"][-1][-1]
    res = resolution_of(arch)
    out = [{"action": "train", "channels": top["channels"], "kernel": top["kernel"]}] if "train" in kinds else []
    options = {}
    for kind in (kind for kind in kinds if kind in GROWTHS):
        at = 2 * res if kind == "grow" else res  # the new layer's resolution
        acts = [{"action": kind, "channels": c, "kernel": k}
                for c in channels_at(channels, at) for k in kernels_at(kernels, at) if kind != "grow" or k >= 3]
        if acts:
            options[kind] = acts
    while len(out) < children + (1 if "train" in kinds else 0) and options:
        kind = sorted(options)[int(rng.integers(len(options)))]
        acts = options[kind]
        out.append(acts.pop(int(rng.integers(len(acts)))))
        if not acts:
            del options[kind]
    return out


def label(action: dict, parent_arch: dict | None) -> str:
    """``root 4×4 32ch 3×3``, ``train on 16×16``, ``G +conv 32ch 3×3 @16``, ``grow G+D 16→32 32ch 3×3``."""
    layer = f"{action['channels']}ch {action['kernel']}×{action['kernel']}"
    kind = action["action"]
    if kind == "root" or parent_arch is None:
        return f"root 4×4 {layer}"
    res = resolution_of(parent_arch)
    if kind == "train":
        return f"train on {res}×{res}"
    if kind == "grow":
        return f"grow G+D {res}→{2 * res} {layer}"
    return f"{'G' if kind == 'g_layer' else 'D'} +conv {layer} @{res}"
