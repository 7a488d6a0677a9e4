"""Sample grids as PNG files."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 [N, C, H, W] to one uint8 HxWxC (or HxW) array, ``nrow`` images a row."""
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    canvas = np.zeros((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.uint8)
    for i, img in enumerate(images.cpu().numpy()):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        canvas[:, y:y + h, x:x + w] = img
    return canvas[0] if c == 1 else canvas.transpose(1, 2, 0)


def grid_image(images: torch.Tensor, nrow: int | None = None, scale: int | None = None) -> Image.Image:
    """The grid as a PIL image; small images are scaled up (nearest) so the grid is easy to look at."""
    img = Image.fromarray(grid(images, nrow))
    scale = scale or max(1, 64 // images.shape[-1])
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    return img


def save_grid(images: torch.Tensor, path: Path | str, nrow: int | None = None, scale: int | None = None) -> Path:
    """Write a PNG grid (see :func:`grid_image`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid_image(images, nrow, scale).save(path)
    return path
