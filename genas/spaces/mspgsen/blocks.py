"""MSPG-SEN's generator blocks: DEMA attention, the GCTDRN residual block, the global branch.

DEMA (dynamic embedded multi-scale attention, source eq. 1-7)
    ``heads`` heads, head ``h`` reading a ``(2h+1)x(2h+1)`` convolution of the input (1x1, 3x3,
    5x5, ...; depthwise k x k then pointwise, so a wide kernel stays cheap) followed by channel
    attention (squeeze-excitation) and spatial attention (a 7x7 conv over the channel mean / max
    maps); the heads are concatenated and fused by a 1x1 conv (``W_c``) into the focus
    features ``F``. The implicit global context ``C = GlobalEmbed(X)`` is an attention-pooled
    vector (softmax over positions of a 1x1 score map); ``E = Attention(X, C)`` gates that
    context at every position by the scaled dot product of the position's query with C's key.
    ``[alpha, beta] = MLP(X, T)``: per sample and channel, from the input's global average and
    a learned task token ``T`` per block (the block's place in the coarse-to-fine pipeline; the
    source leaves T open), squashed to (0, 2) so that both flows start at weight ~1.
    ``O = alpha * F + beta * E``.

    The contrastive loss (eq. 7, read as *module* contrast): the source designs "positive and
    negative samples for each module" so that the focus (local) and expansion (global) modules
    become complementary and not redundant. ``P_i`` is "the positive sample feature of the
    module", so the positive of the focus features is a second view of the focus features, and
    the other module's features are the negative (the sum over ``j`` in eq. 7 runs over the two
    modules). The two views are the channel vectors of F and E pooled over the two halves of a
    checkerboard of positions (no extra forward pass). For each sample and each module ``m``::

        L_m = -log( exp(sim(m_a, m_b) / tau) / (exp(sim(m_a, F_b) / tau) + exp(sim(m_a, E_b) / tau)) )

    with cosine similarity and no projection head (a head per module could separate F and E by
    itself, leaving the features redundant). Identical F and E cost ``log 2`` per term; F and E
    pointing apart cost nearly 0: the term penalises redundancy, it does not reward it. (The
    earlier reading made each sample's own E the positive of its F, which pulled them together.)
    The block only keeps the pooled views (``pair``) when the contrastive loss is switched on and
    the forward pass records gradients (the G step); :func:`contrastive_loss` reads and clears
    them.

GCTDRN (source eq. 15/16)
    ``y = a * sum_i W_i(X) * Branch_i(X) + b * DEMA(X) + Shortcut(X)`` with convolution branches
    of the searched kernels (3, 5, 7 in the source), fusion weights ``W_i`` computed by a
    selective-kernel attention (softmax over branches, per channel, from the pooled branch sum),
    learnable scalars ``a`` and ``b``, and a 1x1 shortcut when the width changes; PixelNorm
    after, as in ProGAN's generator. Switched off, a stage is ProGAN's two 3x3 convs (with
    DEMA, when on, added as a residual attention after them).

Global feature enhancement: global average pooling of the last features, embedded and fused
back with the local features by a 1x1 conv over ``[local, global]`` (residual).

Layers are plain ``torch.nn``, initialised by :func:`he_init` (He-normal for LeakyReLU(0.2), zero
bias): PyTorch's default init shrinks the signal layer by layer, and with it D stayed at chance
(logits ~0) against a co-trained G in the source's logistic game.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genas.spaces.layers import lrelu, pixel_norm

TASK_DIM = 8


def he_init(net: nn.Module, linear_out: tuple[nn.Module, ...] = ()) -> nn.Module:
    """He-normal weights for LeakyReLU(0.2) and zero biases; ``linear_out`` layers get gain 1 (no activation)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in linear_out:
        nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
    return net


class ChannelAttention(nn.Module):
    """Squeeze-excitation: a per-channel gate from the pooled features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(channels // 4, 2)
        self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean(dim=(2, 3)))[:, :, None, None]


class SpatialAttention(nn.Module):
    """A per-position gate from the channel mean and max maps (CBAM's spatial attention)."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(maps))


class DEMAHead(nn.Module):
    """One head: a ``kernel``-sized convolution of the input, then channel and spatial attention (eq. 1)."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, kernel, padding=kernel // 2, groups=cin)
        self.pointwise = nn.Conv2d(cin, cout, 1)
        self.channel, self.spatial = ChannelAttention(cout), SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(lrelu(self.pointwise(self.depthwise(x)))))


class DEMA(nn.Module):
    """Dynamic embedded multi-scale attention: ``alpha * F + beta * E`` (eq. 1-6), eq. 7's pair on demand."""

    def __init__(self, cin: int, cout: int, heads: int, contrastive: bool) -> None:
        super().__init__()
        head_channels = max(cout // heads, 4)
        self.heads = nn.ModuleList(DEMAHead(cin, head_channels, 2 * h + 1) for h in range(heads))
        self.fuse = nn.Conv2d(head_channels * heads, cout, 1)  # W_c
        d = max(cout // 4, 4)
        self.scale = 1.0 / math.sqrt(d)
        self.context_score = nn.Conv2d(cin, 1, 1)
        self.context = nn.Linear(cin, cout)
        self.query, self.key, self.value = nn.Conv2d(cin, d, 1), nn.Linear(cout, d), nn.Linear(cout, cout)
        self.task = nn.Parameter(torch.zeros(TASK_DIM))
        hidden = max(cin // 2, 8)
        self.mix = nn.Sequential(nn.Linear(cin + TASK_DIM, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 2 * cout))
        self.contrastive = contrastive
        self.pair: tuple[torch.Tensor, ...] | None = None  # (F_a, F_b, E_a, E_b): two views per module

    def global_embed(self, x: torch.Tensor) -> torch.Tensor:
        """C = GlobalEmbed(X): the input pooled with a learned softmax over positions (eq. 3)."""
        weights = torch.softmax(self.context_score(x).flatten(2).float(), dim=-1).to(x.dtype)
        return self.context((x.flatten(2) * weights).sum(-1))

    def weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[alpha, beta] = MLP(X, T), each [b, cout, 1, 1] in (0, 2) (eq. 5)."""
        t = self.task.to(x.dtype).expand(x.shape[0], -1)
        ab = 2.0 * torch.sigmoid(self.mix(torch.cat([x.mean(dim=(2, 3)), t], dim=1)))
        alpha, beta = ab.view(x.shape[0], 2, -1, 1, 1).unbind(1)
        return alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        focus = self.fuse(torch.cat([head(x) for head in self.heads], dim=1))  # F, eq. 2
        c = self.global_embed(x)
        affinity = torch.einsum("bdn,bd->bn", self.query(x).flatten(2), self.key(c)) * self.scale
        expand = torch.sigmoid(affinity).view(b, 1, h, w) * self.value(c)[:, :, None, None]  # E, eq. 4
        alpha, beta = self.weights(x)
        if self.contrastive and self.training and torch.is_grad_enabled():
            self.pair = (*checkerboard_views(focus), *checkerboard_views(expand))
        return alpha * focus + beta * expand  # eq. 6


def checkerboard_views(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two views of a feature map: its channels averaged over the even and the odd checkerboard squares."""
    h, w = x.shape[-2:]
    even = ((torch.arange(h, device=x.device)[:, None] + torch.arange(w, device=x.device)) % 2 == 0).to(x.dtype)
    odd = 1.0 - even
    return (x * even).sum(dim=(2, 3)) / even.sum(), (x * odd).sum(dim=(2, 3)) / odd.sum()


def module_contrast(focus_a: torch.Tensor, focus_b: torch.Tensor, expand_a: torch.Tensor, expand_b: torch.Tensor,
                    tau: float) -> torch.Tensor:
    """Eq. 7 over the two modules: each module's view must pick its own other view, not the other module's.

    All four are ``[batch, channels]``; returns the mean over samples of the focus and expansion terms.
    """
    fa, fb, ea, eb = (F.normalize(v.float(), dim=1) for v in (focus_a, focus_b, expand_a, expand_b))
    positives = torch.stack([fb, eb], dim=1)  # [b, module j, c]: P_j, the module's positive sample
    logits = torch.einsum("bmc,bjc->bmj", torch.stack([fa, ea], dim=1), positives) / tau
    target = torch.arange(2, device=logits.device).expand(logits.shape[0], 2)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


def contrastive_loss(net: nn.Module, tau: float) -> torch.Tensor | None:
    """Mean eq. 7 loss over the DEMA blocks of ``net`` that ran with gradients since the last call."""
    losses = []
    for module in net.modules():
        if isinstance(module, DEMA) and module.pair is not None:
            losses.append(module_contrast(*module.pair, tau))
            module.pair = None
    return torch.stack(losses).mean() if losses else None


def clear_pairs(net: nn.Module) -> None:
    """Drop the views the DEMA blocks of ``net`` kept (a forward pass that is not G's step made them)."""
    for module in net.modules():
        if isinstance(module, DEMA):
            module.pair = None


class GCTDRN(nn.Module):
    """Globally connected two-flow dynamic residual block (eq. 15/16)."""

    def __init__(self, cin: int, cout: int, kernels: tuple[int, ...], attention: DEMA | None) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(cin, cout, k, padding=k // 2) for k in kernels)
        hidden = max(cout // 4, 4)
        self.select = nn.Sequential(nn.Linear(cout, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, cout * len(kernels)))
        self.a, self.b = nn.Parameter(torch.ones(())), nn.Parameter(torch.ones(()))
        self.attention = attention
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = torch.stack([lrelu(branch(x)) for branch in self.branches], dim=1)  # [b, n, c, h, w]
        b, n, c = branches.shape[:3]
        w = torch.softmax(self.select(branches.sum(1).mean(dim=(2, 3))).view(b, n, c).float(), dim=1)
        y = self.a * (branches * w.to(branches.dtype)[..., None, None]).sum(1)  # eq. 16's sum_i W_i Branch_i
        if self.attention is not None:
            y = y + self.b * self.attention(x)
        return pixel_norm(y + self.shortcut(x))


class PlainBlock(nn.Module):
    """ProGAN's stage (two 3x3 convs), the GCTDRN-off ablation; DEMA, when on, as a residual attention."""

    def __init__(self, cin: int, cout: int, attention: DEMA | None) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, padding=1), nn.Conv2d(cout, cout, 3, padding=1)
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = pixel_norm(lrelu(self.conv2(pixel_norm(lrelu(self.conv1(x))))))
        return pixel_norm(y + self.attention(y)) if self.attention is not None else y


class GlobalEnhance(nn.Module):
    """The generator's global feature enhancement branch: GAP, embedded, fused back with the local features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.embed = nn.Linear(channels, channels)
        self.fuse = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = lrelu(self.embed(x.mean(dim=(2, 3))))[:, :, None, None].expand_as(x)
        return x + self.fuse(torch.cat([x, g], dim=1))
