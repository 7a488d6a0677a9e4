"""A progressively grown generator G and discriminator D (ProGAN's networks), grown by parts.

dggan grows them one searched action at a time, progan on ProGAN's fixed schedule; both train
them with the same loop (``loop.py``), so the two compare on equal terms. The architecture is a
plain JSON-able dict (a trial's ``arch`` user attr)::

    {"latent": 64,                 # z dimension
     "image_channels": 1,
     "g_dense": 32,                # z -> PixelNorm -> dense to 4x4 x g_dense
     "g": [[{"channels": 32, "kernel": 3}],           # G stage 0 at 4x4: conv layers in forward order
           [{"channels": 16, "kernel": 5}, ...]],     # stage i at 4*2**i: upsample, then its layers
     "d": [[],                                        # D stage 0 at 4x4 (may be empty)
           [{"channels": 16, "kernel": 3}, ...]],     # stage i at 4*2**i: its layers, then downsample
     "d_head": {"channels": 32, "kernel": 3}}         # 4x4 head: minibatch stddev, conv, dense, score

The resolution is ``4 * 2 ** (len(g) - 1)``; G and D always have as many stages (the image G
makes is the image D reads) but any number of layers per stage (asymmetric depths).

G runs z -> dense -> stages 0..top -> to-RGB (1x1). A G layer ``{channels, kernel}`` is a conv
to ``channels`` outputs, LeakyReLU, PixelNorm. D runs image -> from-RGB (1x1) -> stages
top..0 -> head. A D layer ``{channels, kernel}`` is a conv *reading* ``channels`` inputs (its
output width is the next layer's ``channels``, or the head's), LeakyReLU; so a layer inserted
at the bottom of D never changes the shape of an existing weight.

Growing: :func:`root_arch` is the minimal pair; :func:`add_g_layer` appends a conv at the top of
G's top stage, :func:`add_d_layer` inserts one at the bottom of D (right after from-RGB), and
:func:`add_stage` doubles the resolution with a new G stage on top (upsample + convs) and the
matching D stage at the bottom (convs + downsample).

Weights: a child is built fresh (random new layers, fresh to-RGB / from-RGB where the top of G /
bottom of D changed) and every existing layer inherits its parent's tensors under the same name
(module names never shift: D's per-stage lists are stored nearest-the-head first). Each new
layer is faded in ProGAN-style: ``fade`` says which side has a new part (``"layer"``: the last G
layer / the first D layer; ``"stage"``: a whole new resolution), the parent's to-RGB / from-RGB
is kept as ``old_rgb`` and the output is ``lerp(old path, new path, alpha)``. At alpha 0 the
child computes exactly what its parent computed (nearest-upsampled after a ``grow``); at alpha 1
:func:`finalize` drops the old path.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from genas.errors import GenasError
from genas.spaces.generators import LatentGenerator
from genas.spaces.layers import (EqConv2d, EqLinear, downsample2, fade, lrelu, minibatch_stddev, pixel_norm,
                                 upsample2)

KERNELS = (1, 3, 5, 7)
Fades = dict  # {"g": None | "layer" | "stage", "d": ...}
NO_FADE: Fades = {"g": None, "d": None}


# ---------------------------------------------------------------- the arch dict

def resolution_of(arch: dict) -> int:
    return 4 * 2 ** (len(arch["g"]) - 1)


def root_arch(latent: int, image_channels: int, channels: int, kernel: int) -> dict:
    """The minimal networks: z -> dense 4x4 -> conv -> to-RGB; from-RGB -> stddev, conv, dense, score."""
    layer = {"channels": int(channels), "kernel": int(kernel)}
    return {"latent": int(latent), "image_channels": int(image_channels), "g_dense": int(channels),
            "g": [[dict(layer)]], "d": [[]], "d_head": dict(layer)}


def add_g_layer(arch: dict, layer: dict) -> tuple[dict, Fades]:
    """A conv appended at the top of G's top stage, faded in."""
    child = copy.deepcopy(arch)
    child["g"][-1].append(_layer(layer))
    return child, {"g": "layer", "d": None}


def add_d_layer(arch: dict, layer: dict) -> tuple[dict, Fades]:
    """A conv inserted at the bottom of D (it reads from-RGB's output), faded in."""
    child = copy.deepcopy(arch)
    child["d"][-1].insert(0, _layer(layer))
    return child, {"g": None, "d": "layer"}


def _layer(layer: dict) -> dict:
    return {"channels": int(layer["channels"]), "kernel": int(layer["kernel"])}


def add_stage(arch: dict, g_layers: list[dict], d_layers: list[dict]) -> tuple[dict, Fades]:
    """Double the resolution: a new G stage on top and a new D stage at the bottom, both faded in."""
    if not g_layers or not d_layers:
        raise GenasError("a new stage needs at least one G layer and one D layer")
    child = copy.deepcopy(arch)
    child["g"].append([_layer(x) for x in g_layers])
    child["d"].append([_layer(x) for x in d_layers])
    return child, {"g": "stage", "d": "stage"}


def validate_arch(arch: object) -> dict:
    """Raise GenasError unless ``arch`` is a well-formed architecture dict."""
    def layer_ok(x: object) -> bool:
        return (isinstance(x, dict) and set(x) == {"channels", "kernel"} and isinstance(x["channels"], int)
                and x["channels"] > 0 and x["kernel"] in KERNELS)

    try:
        ok = (isinstance(arch, dict)
              and all(isinstance(arch[k], int) and arch[k] > 0 for k in ("latent", "image_channels", "g_dense"))
              and isinstance(arch["g"], list) and isinstance(arch["d"], list)
              and len(arch["g"]) == len(arch["d"]) >= 1
              and all(isinstance(s, list) and s and all(layer_ok(x) for x in s) for s in arch["g"])
              and all(isinstance(s, list) and (s or i == 0) and all(layer_ok(x) for x in s)
                      for i, s in enumerate(arch["d"]))
              and layer_ok(arch["d_head"]))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise GenasError(f"malformed grown-GAN architecture {arch!r}; the checkpoint does not match its config")
    return arch


# ---------------------------------------------------------------- the networks

class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = EqConv2d(cin, cout, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_norm(lrelu(self.conv(x)))


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = EqConv2d(cin, cout, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu(self.conv(x))


class GNet(nn.Module):
    """z [n, latent] -> image [n, C, R, R] in about [-1, 1]."""

    def __init__(self, arch: dict, fade_kind: str | None = None) -> None:
        super().__init__()
        self.latent, self.fade_kind, self.alpha = arch["latent"], fade_kind, 1.0
        c = self.dense_channels = arch["g_dense"]
        self.dense = EqLinear(arch["latent"], c * 16, gain=math.sqrt(2) / 4)
        widths = []  # input width of each layer, for the fade's old to-RGB
        self.stages = nn.ModuleList()
        for stage in arch["g"]:
            blocks = nn.ModuleList()
            for layer in stage:
                widths.append(c)
                blocks.append(GBlock(c, layer["channels"], layer["kernel"]))
                c = layer["channels"]
            self.stages.append(blocks)
        self.to_rgb = EqConv2d(c, arch["image_channels"], 1, gain=1.0)
        if fade_kind == "layer":
            self.old_rgb = EqConv2d(widths[-1], arch["image_channels"], 1, gain=1.0)
        elif fade_kind == "stage":
            self.old_rgb = EqConv2d(widths[-len(arch["g"][-1])], arch["image_channels"], 1, gain=1.0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.dense(pixel_norm(z)).view(z.shape[0], self.dense_channels, 4, 4)
        x = pixel_norm(lrelu(x))
        top, old = len(self.stages) - 1, None
        for si, blocks in enumerate(self.stages):
            if si == top and self.fade_kind == "stage":
                old = x
            if si > 0:
                x = upsample2(x)
            for li, block in enumerate(blocks):
                if si == top and li == len(blocks) - 1 and self.fade_kind == "layer":
                    old = x
                x = block(x)
        y = self.to_rgb(x)
        if self.fade_kind is None:
            return y
        y_old = self.old_rgb(old)
        if self.fade_kind == "stage":
            y_old = upsample2(y_old)
        return fade(y_old, y, self.alpha)


class DNet(nn.Module):
    """image [n, C, R, R] -> score [n, 1] (WGAN critic)."""

    def __init__(self, arch: dict, fade_kind: str | None = None) -> None:
        super().__init__()
        self.fade_kind, self.alpha = fade_kind, 1.0
        head = arch["d_head"]
        flat = [layer for stage in reversed(arch["d"]) for layer in stage]  # forward order
        outs = [x["channels"] for x in flat[1:]] + [head["channels"]]
        self.stages = nn.ModuleList([nn.ModuleList() for _ in arch["d"]])
        i = 0
        for si in reversed(range(len(arch["d"]))):
            blocks = [DBlock(x["channels"], outs[i + j], x["kernel"]) for j, x in enumerate(arch["d"][si])]
            i += len(blocks)
            self.stages[si].extend(reversed(blocks))  # stored nearest-the-head first: names never shift
        first = flat[0]["channels"] if flat else head["channels"]
        self.from_rgb = EqConv2d(arch["image_channels"], first, 1)
        if fade_kind == "layer":
            self.old_rgb = EqConv2d(arch["image_channels"], outs[0], 1)
        elif fade_kind == "stage":
            self.old_rgb = EqConv2d(arch["image_channels"], outs[len(arch["d"][-1]) - 1], 1)
        self.head_conv = EqConv2d(head["channels"] + 1, head["channels"], head["kernel"])
        self.head_dense = EqLinear(head["channels"] * 16, head["channels"])
        self.score = EqLinear(head["channels"], 1, gain=1.0)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.from_rgb(img))
        top = len(self.stages) - 1
        for si in range(top, -1, -1):
            for li, block in enumerate(reversed(self.stages[si])):
                x = block(x)
                if si == top and li == 0 and self.fade_kind == "layer":
                    x = fade(lrelu(self.old_rgb(img)), x, self.alpha)
            if si > 0:
                x = downsample2(x)
            if si == top and self.fade_kind == "stage":
                x = fade(lrelu(self.old_rgb(downsample2(img))), x, self.alpha)
        x = lrelu(self.head_conv(minibatch_stddev(x)))
        x = lrelu(self.head_dense(x.flatten(1)))
        return self.score(x)


# ---------------------------------------------------------------- building, inheriting, finishing

class Nets(nn.Module):
    """G, D and the EMA generator of one architecture (with the fades in progress)."""

    def __init__(self, arch: dict, fades: Fades = NO_FADE) -> None:
        super().__init__()
        self.arch, self.fades = arch, dict(fades)
        self.G, self.D, self.G_ema = GNet(arch, fades["g"]), DNet(arch, fades["d"]), GNet(arch, fades["g"])
        self.G_ema.load_state_dict(self.G.state_dict())
        self.G_ema.requires_grad_(False)

    def set_alpha(self, alpha: float) -> None:
        for net in (self.G, self.G_ema, self.D):
            net.alpha = alpha

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}


def _rename(key: str, fading: bool) -> str:
    # the parent's to-RGB / from-RGB becomes the child's old path when that side has a new part
    for rgb in ("G.to_rgb.", "G_ema.to_rgb.", "D.from_rgb."):
        if fading and key.startswith(rgb):
            return key.split(".")[0] + ".old_rgb." + key.split(".", 2)[2]
    return key


def inherit(parent: dict[str, torch.Tensor], arch: dict, fades: Fades) -> Nets:
    """Build the child (new parts random from the current torch seed) and copy the parent's tensors in.

    Existing layers of G, D and G_ema take the parent's G, D and G_ema tensors respectively, so the
    EMA generator carries its own smoothed weights on while new layers start from the fresh weights
    (the same in G and G_ema).
    """
    nets = Nets(arch, fades)
    own = nets.state_dict()
    fading = {"G": fades["g"] is not None, "G_ema": fades["g"] is not None, "D": fades["d"] is not None}
    for key, value in parent.items():
        name = _rename(key, fading.get(key.split(".")[0], False))
        if name not in own or own[name].shape != value.shape:
            raise GenasError(f"parent state does not fit the child architecture at {key!r}; "
                             "the parent's checkpoint does not match its config")
        own[name].copy_(value)
    return nets


def finalize(nets: Nets) -> Nets:
    """At alpha 1: drop the old paths, keeping every trained weight (returns a fade-free Nets)."""
    if nets.fades == NO_FADE:
        return nets
    keep = {k: v for k, v in nets.state_dict().items() if ".old_rgb." not in k}
    done = Nets(nets.arch).to(next(nets.parameters()).device)
    done.load_state_dict(keep)
    return done


class GrownGenerator(LatentGenerator):
    """The EMA G of a grown architecture; dggan and progan subclass it with their ``space_name``."""

    network = GNet
    validate_arch = staticmethod(validate_arch)

    @property
    def resolution(self) -> int:
        return resolution_of(self.arch)
