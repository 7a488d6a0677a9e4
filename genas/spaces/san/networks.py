"""SAN's generator G and its mirror, the reverser R, with one kernel per G/R pair of convs.

Reading the source's "six generator modules": G is a stack of *Generator* modules, each
``ADO -> 3 x (attention + transposed-conv residual block) -> RPA``, and R is the same stack of
*Reverse* modules run backwards (``RPA -> 3 x (attention + conv residual block) -> ADO``). We read
one module as one resolution step: the first module turns z (a 1x1 map of ``latent`` channels)
into 4x4 with a 4x4 transposed conv (DCGAN's first layer), every later one doubles the resolution
with a stride-2 4x4 transposed conv; the two other blocks of a module are 3x3, stride 1. So a
module count follows from the image size, ``log2(resolution) - 1``: six modules make 128x128
images, which is what we take the source's six to be. Built here: 2 modules for the 8x8 digits,
4 for mnist5k's 32x32, 6 at 128x128 (``full`` builds whatever the dataset's resolution asks for;
the source's six at 128x128). Widths follow ProGAN's rule (``width`` up to 16x16, halved per
doubling beyond, at least 8).

The arch is a JSON-able dict (the trial's ``arch`` user attr, the generator's config)::

    {"latent": 64, "image_channels": 1, "channels": [32, 32, 16, 8],   # each module's output width
     "attention": true, "rpa": true, "rpa_ratio": 0.5, "ado": true, "ado_threshold": 0.1,
     "shortcut": "bilinear", "upsample_kernel": "resize"}

Residual blocks ("Split/Add"): the input splits into the main path (conv, PixelNorm, LeakyReLU,
channel attention) and a shortcut (upsampled in G / average-pooled in R to the output size, then a
1x1 conv when the width changes), and the two are added. The source does not say how G's shortcut
is upsampled; genas takes bilinear. Nearest (genas's first reading, and what an arch without a
``shortcut`` key, saved before the key existed, still builds) carries each module's map up the
stream as flat 2x2, 4x4, 8x8 pixel blocks, and a G that leans on the stream paints them: on the
100 LFW faces the nearest-shortcut champion drew grey 4-pixel blocks with no face in them, the
same config with bilinear shortcuts drew faces (bench/README.md, "san's blocks").

G's stride-2 kernels ("upsample_kernel"): a free 4x4 transposed-conv kernel paints a 2-pixel
checkerboard (its four output phases each sum different taps, Odena et al. 2016), which the
residual stream does not hide. ``"resize"`` (genas's choice; the source says only "transposed
conv") makes each stride-2 4x4 kernel a learned 3x3 kernel spread over 2x2 (:class:`ResizeConv`):
the transposed conv then *is* nearest-upsample + 3x3 conv, one sum of taps for every phase, and
R's mirror conv uses the very same 4x4 kernel, so the kernels are still shared (the 3x3 ones are
what is averaged). An arch saved without the key builds free 4x4 kernels (``"free"``).

Shared kernels: G's block ``Cin -> Cout`` is ``ConvTranspose2d(Cin, Cout)``, weight
``[Cin, Cout, k, k]``; its mirror in R maps ``Cout -> Cin`` with ``Conv2d(Cout, Cin)``, weight
``[Cin, Cout, k, k]`` too, with the same kernel, stride and padding (the exact adjoint operation:
the conv undoes the transposed conv's change of size). Each network keeps its own copy as its own
``nn.Parameter`` so each takes its own optimiser step on its own loss; :func:`share_kernels` then
sets both copies to ``lam * W_G + (1 - lam) * W_R``. Biases, shortcuts, attention modules and
to-image / from-image 1x1 convs are each network's own. G ends with a linear 1x1 conv to the
image channels, R starts with a 1x1 conv + LeakyReLU from them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genas.errors import GenasError
from genas.spaces.layers import lrelu, pixel_norm
from genas.spaces.san.attention import AttentionDropout, ChannelAttention, RegionPixelAttention, kaiming_

ARCH_KEYS = ("latent", "image_channels", "channels", "attention", "rpa", "rpa_ratio", "ado", "ado_threshold")
#: the arch's unsearched choices: their values (genas's default first) and what an arch saved before
#: the key existed was trained with
CHOICES = {"shortcut": (("bilinear", "nearest"), "nearest"), "upsample_kernel": (("resize", "free"), "free")}


def width_at(resolution: int, width: int) -> int:
    """ProGAN's channel rule: ``width`` up to 16x16, halved per doubling beyond, at least 8."""
    return max(8, min(width, width * 16 // resolution))


def modules_for(resolution: int) -> int:
    """Generator modules for a ``resolution``-pixel image: 1x1 -> 4x4, then one per doubling."""
    if resolution < 4 or resolution & (resolution - 1):
        raise GenasError(f"san needs a power-of-two image resolution >= 4, got {resolution}; "
                         "resize the dataset (e.g. folder:PATH images to 32x32)")
    return int(math.log2(resolution)) - 1


def make_arch(resolution: int, image_channels: int, latent: int, width: int, *, attention: bool, rpa: bool,
              rpa_ratio: float, ado: bool, ado_threshold: float, shortcut: str = "bilinear",
              upsample_kernel: str = "resize") -> dict:
    n = modules_for(resolution)
    return {"latent": int(latent), "image_channels": int(image_channels),
            "channels": [width_at(4 * 2 ** i, int(width)) for i in range(n)],
            "attention": bool(attention), "rpa": bool(rpa), "rpa_ratio": float(rpa_ratio),
            "ado": bool(ado), "ado_threshold": float(ado_threshold), "shortcut": shortcut,
            "upsample_kernel": upsample_kernel}


def validate_arch(arch: object) -> dict:
    if not isinstance(arch, dict) or set(ARCH_KEYS) - set(arch):
        missing = sorted(set(ARCH_KEYS) - set(arch)) if isinstance(arch, dict) else list(ARCH_KEYS)
        raise GenasError(f"san arch is missing {missing}; re-export the checkpoint from its trial")
    channels = arch["channels"]
    if not isinstance(channels, list) or not channels or not all(isinstance(c, int) and c > 0 for c in channels):
        raise GenasError(f"san arch has bad module widths {channels!r}; re-export the checkpoint from its trial")
    for key, (values, _) in CHOICES.items():
        if choice_of(arch, key) not in values:
            raise GenasError(f"san arch has {key} {arch[key]!r}, not one of {', '.join(values)}; "
                             "re-export the checkpoint from its trial")
    return arch


def choice_of(arch: dict, key: str) -> str:
    """``arch[key]``, or for an arch saved before the key existed, what it was trained with."""
    return arch.get(key, CHOICES[key][1])


def resolution_of(arch: dict) -> int:
    return 4 * 2 ** (len(arch["channels"]) - 1)


def block_specs(arch: dict) -> list[list[tuple[int, int, int, int, int]]]:
    """Per module, its three G blocks as ``(cin, cout, kernel, stride, padding)`` in G's order."""
    specs, cin = [], arch["latent"]
    for i, cout in enumerate(arch["channels"]):
        first = (cin, cout, 4, 1, 0) if i == 0 else (cin, cout, 4, 2, 1)
        specs.append([first, (cout, cout, 3, 1, 1), (cout, cout, 3, 1, 1)])
        cin = cout
    return specs


class ResizeConv(nn.Module):
    """A stride-2, padding-1 4x4 (transposed) conv whose kernel is a 3x3 one spread over 2x2.

    ``weight`` is the 3x3 kernel, laid out as the 4x4 one would be (``[Cin, Cout]`` of G's
    transposed conv for both it and R's mirror), so kernel sharing averages it like any other.
    """

    def __init__(self, cin: int, cout: int, *, transposed: bool) -> None:
        super().__init__()
        g_in, g_out = (cin, cout) if transposed else (cout, cin)
        self.weight = nn.Parameter(torch.empty(g_in, g_out, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.transposed = transposed

    def kernel(self) -> torch.Tensor:
        v = self.weight
        spread = F.conv_transpose2d(v.reshape(-1, 1, 3, 3), v.new_ones(1, 1, 2, 2))
        return spread.reshape(*v.shape[:2], 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = F.conv_transpose2d if self.transposed else F.conv2d
        return conv(x, self.kernel(), self.bias, stride=2, padding=1)


class ResidualBlock(nn.Module):
    """conv (transposed in G) -> PixelNorm -> LeakyReLU -> channel attention, plus a shortcut."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int, *, transposed: bool,
                 attention: bool, shortcut: str = "bilinear", upsample_kernel: str = "resize") -> None:
        super().__init__()
        if stride == 2 and upsample_kernel == "resize":
            assert (kernel, padding) == (4, 1), "a resize kernel stands in for a 4x4, padding-1 one"
            self.conv = ResizeConv(cin, cout, transposed=transposed)
        else:
            conv = nn.ConvTranspose2d if transposed else nn.Conv2d
            self.conv = conv(cin, cout, kernel, stride=stride, padding=padding)
        self.attention = ChannelAttention(cout) if attention else nn.Identity()
        self.skip = kaiming_(nn.Conv2d(cin, cout, 1, bias=False)) if cin != cout else nn.Identity()
        self.transposed = transposed
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attention(lrelu(pixel_norm(self.conv(x))))
        if x.shape[-2:] != y.shape[-2:]:
            if not self.transposed:
                x = F.adaptive_avg_pool2d(x, y.shape[-2:])
            else:
                x = F.interpolate(x, size=y.shape[-2:], mode=self.shortcut)
        return y + self.skip(x)


class GeneratorModule(nn.Module):
    """ADO -> three transposed-conv residual blocks -> RPA (one resolution step of G)."""

    def __init__(self, specs: list[tuple[int, int, int, int, int]], arch: dict) -> None:
        super().__init__()
        cin, cout = specs[0][0], specs[-1][1]
        self.ado = AttentionDropout(cin, arch["ado_threshold"]) if arch["ado"] else nn.Identity()
        self.blocks = nn.ModuleList(ResidualBlock(*s, transposed=True, attention=arch["attention"],
                                                  shortcut=choice_of(arch, "shortcut"),
                                                  upsample_kernel=choice_of(arch, "upsample_kernel"))
                                    for s in specs)
        self.rpa = RegionPixelAttention(cout, arch["rpa_ratio"]) if arch["rpa"] else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ado(x)
        for block in self.blocks:
            x = block(x)
        return self.rpa(x)


class ReverseModule(nn.Module):
    """The mirror: RPA -> three conv residual blocks (G's in reverse, in/out swapped) -> ADO."""

    def __init__(self, specs: list[tuple[int, int, int, int, int]], arch: dict) -> None:
        super().__init__()
        cin, cout = specs[0][0], specs[-1][1]
        self.rpa = RegionPixelAttention(cout, arch["rpa_ratio"]) if arch["rpa"] else nn.Identity()
        # blocks[j] mirrors G's blocks[j]; they run last to first
        self.blocks = nn.ModuleList(ResidualBlock(o, i, k, s, p, transposed=False, attention=arch["attention"],
                                                  upsample_kernel=choice_of(arch, "upsample_kernel"))
                                    for i, o, k, s, p in specs)
        self.ado = AttentionDropout(cin, arch["ado_threshold"]) if arch["ado"] else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.rpa(x)
        for block in reversed(self.blocks):
            x = block(x)
        return self.ado(x)


class GNet(nn.Module):
    """z [B, latent] -> image [B, C, R, R] (linear output, [-1, 1] scale)."""

    def __init__(self, arch: dict) -> None:
        super().__init__()
        self.arch = validate_arch(arch)
        self.stages = nn.ModuleList(GeneratorModule(s, arch) for s in block_specs(arch))
        self.to_image = nn.Conv2d(arch["channels"][-1], arch["image_channels"], 1)
        nn.init.kaiming_normal_(self.to_image.weight, nonlinearity="linear")
        nn.init.zeros_(self.to_image.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.reshape(z.shape[0], -1, 1, 1)
        for stage in self.stages:
            x = stage(x)
        return self.to_image(x)


class RNet(nn.Module):
    """image [B, C, R, R] -> a point of the latent space [B, latent]."""

    def __init__(self, arch: dict) -> None:
        super().__init__()
        self.arch = validate_arch(arch)
        self.from_image = kaiming_(nn.Conv2d(arch["image_channels"], arch["channels"][-1], 1))
        self.stages = nn.ModuleList(ReverseModule(s, arch) for s in block_specs(arch))  # stages[i] mirrors G's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.from_image(x))
        for stage in reversed(self.stages):
            x = stage(x)
        return x.flatten(1)


def shared_pairs(G: GNet, R: RNet) -> list[tuple[nn.Parameter, nn.Parameter]]:
    """Every (G transposed-conv kernel, mirror R conv kernel) pair; both ``[Cin, Cout, k, k]`` (k = 3 for a resize)."""
    pairs = []
    for g_stage, r_stage in zip(G.stages, R.stages):
        for g_block, r_block in zip(g_stage.blocks, r_stage.blocks):
            assert g_block.conv.weight.shape == r_block.conv.weight.shape
            pairs.append((g_block.conv.weight, r_block.conv.weight))
    return pairs


def init_shared(G: GNet, R: RNet) -> None:
    """Kaiming-init each shared kernel once (fan-in of G's direction) and give R the same values."""
    with torch.no_grad():
        for g, r in shared_pairs(G, R):
            # torch reads [Cin, Cout, k, k] as [out, in, ...]: its "fan_out" is Cin*k*k, G's fan-in
            nn.init.kaiming_normal_(g, a=0.2, mode="fan_out", nonlinearity="leaky_relu")
            r.copy_(g)
        for stage_g, stage_r in zip(G.stages, R.stages):
            for block in (*stage_g.blocks, *stage_r.blocks):
                nn.init.zeros_(block.conv.bias)


@torch.no_grad()
def share_kernels(pairs: list[tuple[nn.Parameter, nn.Parameter]], lam: float) -> None:
    """After each step: both copies of every shared kernel become ``lam * W_G + (1 - lam) * W_R``."""
    g_list, r_list = [g for g, _ in pairs], [r for _, r in pairs]
    mixed = torch._foreach_lerp(r_list, g_list, lam)  # r + lam * (g - r)
    torch._foreach_copy_(g_list, mixed)
    torch._foreach_copy_(r_list, mixed)
