"""SAN's three attention modules: channel attention, RPA (region pixel attention) and ADO.

- :class:`ChannelAttention` is the source's "Attention" (基于通道注意力模块) inside every residual
  block. The source names it without detail; we build squeeze-and-excitation (global average
  pool, a 1x1 bottleneck to ``channels // 4``, LeakyReLU, back to ``channels``, sigmoid, scale).
- :class:`RegionPixelAttention` (RPA) follows the source step by step: conv-PixelNorm-LeakyReLU to
  ``C*r`` channels at H/2 (a stride-2 3x3 conv), conv-PixelNorm back to ``C`` channels at H/4,
  sigmoid, bilinear upsampling to HxW, times the input. Maps are therefore strictly in (0, 1).
- :class:`AttentionDropout` (ADO): two PixelNorm + 3x3 conv layers (LeakyReLU, then sigmoid) give an
  attention map of the input's shape; every unit whose attention is under ``threshold`` is zeroed,
  the others pass unchanged. The source does not say how the attention convs learn through a hard
  mask (its gradient is zero almost everywhere), so the mask is a straight-through estimator:
  forward it is exactly the 0/1 mask, backward it passes the gradient as if it were the attention
  map itself, so the convs learn which units to keep.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genas.spaces.layers import lrelu, pixel_norm


def kaiming_(conv: nn.Conv2d) -> nn.Conv2d:
    """The source's init: He-normal for LeakyReLU(0.2), zero bias."""
    nn.init.kaiming_normal_(conv.weight, a=0.2, nonlinearity="leaky_relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: rescale each channel by a gate in (0, 1) computed from all channels."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = kaiming_(nn.Conv2d(channels, hidden, 1))
        self.excite = kaiming_(nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.excite(lrelu(self.squeeze(x.mean(dim=(2, 3), keepdim=True)))))
        return x * gate


class RegionPixelAttention(nn.Module):
    """RPA: a per-pixel, per-channel weight in (0, 1) computed at quarter resolution."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__()
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"RPA compresses channels by r < 1, got r={ratio}")
        squeezed = max(1, round(channels * ratio))
        self.compress = kaiming_(nn.Conv2d(channels, squeezed, 3, stride=2, padding=1))
        self.restore = kaiming_(nn.Conv2d(squeezed, channels, 3, stride=2, padding=1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The map the input is multiplied with: (B, C, H, W), every value in (0, 1)."""
        a = lrelu(pixel_norm(self.compress(x)))       # (B, C*r, H/2, W/2)
        a = torch.sigmoid(pixel_norm(self.restore(a)))  # (B, C, H/4, W/4)
        return F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class AttentionDropout(nn.Module):
    """ADO: zero the units whose attention is under ``threshold``; keep the rest as they are."""

    def __init__(self, channels: int, threshold: float) -> None:
        super().__init__()
        self.threshold = float(threshold)
        self.first = kaiming_(nn.Conv2d(channels, channels, 3, padding=1))
        self.second = kaiming_(nn.Conv2d(channels, channels, 3, padding=1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """An attention map of the input's shape, in (0, 1)."""
        return torch.sigmoid(self.second(pixel_norm(lrelu(self.first(pixel_norm(x))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(x)
        keep = (a >= self.threshold).to(a.dtype)
        # straight-through: the value is exactly ``keep``, the gradient is d(attention)
        return x * (keep + (a - a.detach()))
