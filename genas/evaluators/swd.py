"""Sliced Wasserstein distance, the ProGAN protocol (Karras et al. 2018, appendix D).

Each image becomes a Laplacian pyramid (5x5 binomial kernel, down to 16x16); from every level 128
random 7x7 neighbourhoods are taken per image; each set of descriptors is normalised per colour
channel; the distance between the real and fake sets at one level is the sliced Wasserstein
distance over 4 x 128 random unit directions. Reported x1e3 per level (``swd_<res>``) and averaged
(``swd``). Everything is batched torch and runs on whatever device the inputs live on.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from genas.errors import GenasError

NHOOD_SIZE = 7
NHOODS_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
MIN_RESOLUTION = 16
SCALE = 1e3
_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def pyramid_resolutions(resolution: int) -> list[int]:
    """Level sides from full size down to 16; an image smaller than 16 is a single level.

    A level keeps every other pixel of the one above, starting with the first: an odd side ``s``
    gives ``(s + 1) // 2`` (33 -> 17), which is what ``pyr_down`` returns.
    """
    levels = [resolution]
    while (levels[-1] + 1) // 2 >= MIN_RESOLUTION:
        levels.append((levels[-1] + 1) // 2)
    return levels


def nhood_size(resolution: int) -> int:
    """7, or the largest odd size that fits inside a tiny image."""
    return min(NHOOD_SIZE, resolution if resolution % 2 else resolution - 1)


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    # 'reflect' padding = scipy.ndimage 'mirror' = what cv2.pyrDown/pyrUp do at the border
    c = x.shape[1]
    k = (torch.outer(_BINOMIAL, _BINOMIAL) * gain).to(x)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k.expand(c, 1, 5, 5), groups=c)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    return _blur(x)[:, :, ::2, ::2]


def pyr_up(x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Back to the finer level's ``size`` (default twice the side; 2s - 1 for a level cut from an odd side)."""
    n, c, h, w = x.shape
    height, width = size or (2 * h, 2 * w)
    if not (2 * h - 1 <= height <= 2 * h and 2 * w - 1 <= width <= 2 * w):
        raise ValueError(f"cannot upsample {h}x{w} to {height}x{width}")
    up = x.new_zeros(n, c, height, width)
    up[:, :, ::2, ::2] = x  # the samples sit where pyr_down took them
    return _blur(up, gain=4.0)  # x4 restores the energy of the zeros inserted between samples


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Float images [N, C, H, W] -> ``levels`` band-pass images, finest first, coarsest is low-pass."""
    pyramid = [images if images.is_floating_point() else images.float()]
    for _ in range(1, levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyr_up(pyramid[-1], pyramid[-2].shape[-2:])
    return pyramid


def random_centres(n_images: int, height: int, width: int, per_image: int, size: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image index, row and column of ``per_image`` neighbourhood centres per image, all fully inside."""
    half = size // 2
    img = torch.arange(n_images).repeat_interleave(per_image)
    ys = torch.randint(half, height - half, (n_images * per_image,), generator=generator)
    xs = torch.randint(half, width - half, (n_images * per_image,), generator=generator)
    return img, ys, xs


def extract_descriptors(level: torch.Tensor, img: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                        size: int) -> torch.Tensor:
    """The ``size`` x ``size`` neighbourhoods around the given centres: [M, C, size, size]."""
    half = size // 2
    offsets = torch.arange(-half, half + 1, device=level.device)
    img, ys, xs = img.to(level.device), ys.to(level.device), xs.to(level.device)
    rows = (ys[:, None] + offsets)[:, None, :, None]
    cols = (xs[:, None] + offsets)[:, None, None, :]
    chans = torch.arange(level.shape[1], device=level.device)[None, :, None, None]
    return level[img[:, None, None, None], chans, rows, cols]


def normalize_descriptors(desc: torch.Tensor) -> torch.Tensor:
    """[M, C, k, k] -> [M, C*k*k], zero mean and unit std per colour channel over the whole set."""
    desc = desc.float()
    mean = desc.mean(dim=(0, 2, 3), keepdim=True)
    std = desc.std(dim=(0, 2, 3), keepdim=True, correction=0).clamp_min(1e-8)  # flat images: no NaN
    return ((desc - mean) / std).flatten(1)


def random_directions(dim: int, generator: torch.Generator, repeats: int = DIR_REPEATS,
                      per_repeat: int = DIRS_PER_REPEAT) -> torch.Tensor:
    """Unit directions [repeats, dim, per_repeat], drawn on the CPU so every device sees the same ones."""
    dirs = torch.randn(repeats, dim, per_repeat, generator=generator)
    return dirs / dirs.norm(dim=1, keepdim=True)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> float:
    """Mean over repeats of the mean |sorted projection of a - sorted projection of b| (unscaled)."""
    if a.shape != b.shape:
        raise ValueError(f"descriptor sets must have equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    directions = directions.to(a.device, a.dtype)
    total = 0.0
    for dirs in directions:  # one repeat at a time bounds memory to [per_repeat, M]
        # rows of [per_repeat, M] sort much faster than columns of [M, per_repeat]
        pa, pb = _sort_rows(dirs.T @ a.T), _sort_rows(dirs.T @ b.T)
        total += float((pa - pb).abs().mean())
    return total / len(directions)


def _sort_rows(x: torch.Tensor) -> torch.Tensor:
    if x.device.type != "cpu":
        return torch.sort(x, dim=1).values
    # Sorting is most of SWD's time on a CPU (16 sorts of 128 x 128,000 at 1,000 images, 32x32).
    # numpy's sort is ~1.3x torch's there but single-threaded; it releases the GIL, so blocks of
    # rows sort in parallel threads (1.6x on 2 cores, bench/README.md).
    rows = x.numpy()
    out = np.empty_like(rows)
    workers = max(1, min(torch.get_num_threads(), len(rows)))

    def sort_block(block: slice) -> None:
        out[block] = np.sort(rows[block], axis=1)

    step = -(-len(rows) // workers)
    blocks = [slice(i, i + step) for i in range(0, len(rows), step)]
    if workers == 1:
        sort_block(blocks[0])
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(sort_block, blocks))
    return torch.from_numpy(out)


@torch.no_grad()
def descriptor_sets(images: torch.Tensor, *, seed: int, device: torch.device | str = "cpu",
                    batch_size: int = 512) -> dict[int, torch.Tensor]:
    """uint8 images -> {level resolution: normalised descriptors [N*128, C*k*k]} on ``device``.

    The pyramid is built a batch at a time, so memory holds the descriptors but never the pyramid
    of the whole set.
    """
    n, c, h, w = images.shape
    if h != w:
        raise GenasError(f"SWD needs square images, got {h}x{w}")
    if h < 3:
        raise GenasError(f"SWD needs images of at least 3x3 pixels, got {h}x{w}")
    device = torch.device(device)
    resolutions = pyramid_resolutions(h)
    gen = torch.Generator().manual_seed(seed)
    parts: dict[int, list[torch.Tensor]] = {r: [] for r in resolutions}
    for i in range(0, n, batch_size):
        batch = images[i:i + batch_size].to(device).float()
        for res, level in zip(resolutions, laplacian_pyramid(batch, len(resolutions))):
            size = nhood_size(res)
            img, ys, xs = random_centres(len(batch), res, res, NHOODS_PER_IMAGE, size, gen)
            parts[res].append(extract_descriptors(level, img, ys, xs, size))
    return {r: normalize_descriptors(torch.cat(p)) for r, p in parts.items()}


def _equal_size(a: torch.Tensor, b: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    # Sorted projections are compared element-wise, so both sets need the same count; the larger
    # is subsampled (seeded) rather than the smaller repeated.
    m = min(len(a), len(b))
    if len(a) > m:
        a = a[torch.randperm(len(a), generator=gen)[:m].to(a.device)]
    if len(b) > m:
        b = b[torch.randperm(len(b), generator=gen)[:m].to(b.device)]
    return a, b


def swd_from_descriptors(fake: dict[int, torch.Tensor], real: dict[int, torch.Tensor],
                         seed: int = 0) -> dict[str, float]:
    """{"swd_<res>": ..., "swd": mean over levels}, all x1e3."""
    if sorted(fake) != sorted(real):
        raise GenasError(f"SWD levels differ: fake {sorted(fake)} vs real {sorted(real)}; "
                         "fake and real images must have the same resolution")
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    for res in sorted(fake, reverse=True):
        a, b = _equal_size(fake[res], real[res].to(fake[res].device), gen)
        dirs = random_directions(a.shape[1], gen)
        out[f"swd_{res}"] = SCALE * sliced_wasserstein(a, b, dirs)
    out["swd"] = sum(out.values()) / len(out)
    return out
