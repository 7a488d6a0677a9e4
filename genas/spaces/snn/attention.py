"""Multi-head pixel attention: weights that emphasise the pixels where an agent is close to its target.

The source computes, per head, ``exp(-||x - target||^2)`` over the colour channels of every pixel
and normalises it over the pixels, then averages the heads. Its heads are identical copies; here
head ``h`` uses the temperature ``2**h`` (head 0 is the source's), so the heads see closeness at
different tolerances: head 0 focuses on the few pixels already almost right, later heads spread
their weight over pixels that are roughly right. Each head is a softmax over the pixels, so it
sums to 1; :func:`pixel_weights` turns the heads into one weight per pixel with mean 1.
"""
from __future__ import annotations

import torch


def head_temperatures(heads: int, device: torch.device | str = "cpu") -> torch.Tensor:
    return 2.0 ** torch.arange(heads, dtype=torch.float32, device=device)


def multi_head_attention(positions: torch.Tensor, targets: torch.Tensor, heads: int) -> torch.Tensor:
    """Attention of each agent over its pixels: [A, heads, H, W], every head summing to 1.

    ``positions`` [A, C, H, W]; ``targets`` [A, C, H, W] or [1, C, H, W] (broadcast).
    """
    if heads < 1:
        raise ValueError(f"heads must be >= 1, got {heads}")
    a, _, h, w = positions.shape
    distance = (positions - targets).pow(2).sum(1, keepdim=True)  # [A, 1, H, W]
    logits = -distance / head_temperatures(heads, positions.device).view(1, heads, 1, 1)
    return torch.softmax(logits.flatten(2), dim=-1).view(a, heads, h, w)


def pixel_weights(attention: torch.Tensor) -> torch.Tensor:
    """The heads' mean as one weight per pixel, scaled to mean 1 per agent: [A, 1, H, W]."""
    h, w = attention.shape[-2:]
    return attention.mean(1, keepdim=True) * (h * w)
