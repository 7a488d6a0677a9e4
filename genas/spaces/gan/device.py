"""Where a GAN trial's tensors live: the device, memory format, mixed precision and real batches.

On CUDA: the dataset resident on the GPU (it fits at these sizes), channels_last networks, cuDNN
autotuning and bf16 autocast (scores and losses are taken in float32). On the CPU: none of it.
"""
from __future__ import annotations

from typing import TypeVar

import torch
import torch.nn.functional as F

from genas.spaces.base import TrialContext

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def images_on(ctx: TrialContext) -> torch.Tensor:
    """The dataset where training reads it: on the GPU when there is one."""
    return ctx.dataset.images.to(ctx.device) if ctx.device.type == "cuda" else ctx.dataset.images


def prepare(module: ModuleT, device: torch.device) -> ModuleT:
    """A network on ``device``; on CUDA channels_last with cuDNN autotuning."""
    module = module.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        module = module.to(memory_format=torch.channels_last)
    return module


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA, a no-op elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def memory_format(device: torch.device) -> torch.memory_format:
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def real_at(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """The dataset brought down to ``resolution`` by box filtering (ProGAN's lower levels)."""
    factor = images.shape[-1] // resolution
    return F.avg_pool2d(images, factor) if factor > 1 else images


def real_batch(images: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    """``n`` real images drawn with replacement, on ``device`` in its memory format."""
    x = images[torch.randint(images.shape[0], (n,), device=images.device)].to(device, non_blocking=True)
    return x.contiguous(memory_format=memory_format(device))
