"""Real-data statistics, computed once and cached on disk under ``cache_dir()/stats/``.

Every trial of a study scores against the same real data, so its features (FID/KID) and SWD
descriptors are computed once per (dataset key, resolution, extractor and its weights version,
image count, seed) and read back afterwards. Files are safetensors (no pickle), written to a
temporary name and renamed into place, so concurrent workers never read a half-written file.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from genas.data import Dataset
from genas.evaluators import swd as swd_mod
from genas.evaluators.features import Extractor
from genas.evaluators.fid import feature_stats
from genas.home import cache_dir

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
MAX_FEATURE_IMAGES = 50_000  # the customary FID reference size
MAX_KID_ROWS = 10_000  # KID draws subsets of <= 1000, so more stored rows add nothing but disk
MAX_SWD_IMAGES = 16_384  # ProGAN's SWD sample size (Karras et al. 2018, appendix D)


def stats_dir() -> Path:
    path = cache_dir() / "stats"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _file_name(kind: str, parts: dict[str, object]) -> str:
    text = "-".join(f"{k}{v}" for k, v in parts.items())
    safe = re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)
    # dataset keys can be long paths; a digest keeps the name short and still unique
    digest = hashlib.sha1(f"{FORMAT_VERSION}:{kind}:{text}".encode()).hexdigest()[:10]
    return f"{kind}-{safe[:80]}-{digest}.safetensors"


def cached(kind: str, parts: dict[str, object],
           compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Load ``kind`` for ``parts`` from the cache, or compute, store atomically and return it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    path = stats_dir() / _file_name(kind, parts)
    if path.is_file():
        try:
            tensors = load_file(str(path))
            log.debug("real statistics cache hit: %s", path.name)
            return tensors
        except (SafetensorError, OSError) as exc:  # a truncated file from a crashed disk: recompute
            log.warning("ignoring unreadable cache file %s (%s)", path, exc)
    start = time.perf_counter()
    tensors = {k: v.detach().cpu().contiguous() for k, v in compute().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={k: str(v) for k, v in parts.items()} | {"kind": kind})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("computed real statistics %s in %.1fs", path.name, time.perf_counter() - start)
    return tensors


def real_subset(dataset: Dataset, n: int, seed: int) -> torch.Tensor:
    """``n`` real images as uint8, a seeded random subset: datasets are often sorted by class."""
    if n >= len(dataset):
        return dataset.uint8()
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
    return dataset.uint8()[idx.sort().values]


def real_features(dataset: Dataset, extractor: Extractor, n: int | None = None,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """{"mu", "sigma" (float64, from n images), "features" (float32, up to 10,000 of them, for KID)}.

    ``n`` defaults to the standard reference set: every image of the dataset, up to 50,000.
    """
    n = min(len(dataset), n or MAX_FEATURE_IMAGES)

    def compute() -> dict[str, torch.Tensor]:
        feats = extractor.features(real_subset(dataset, n, seed))
        mu, sigma = feature_stats(feats)
        keep = torch.randperm(len(feats), generator=torch.Generator().manual_seed(seed))[:MAX_KID_ROWS]
        return {"mu": mu, "sigma": sigma, "features": feats[keep.sort().values].float()}

    parts = {"": dataset.key, "r": dataset.resolution, "x": extractor.name, "v": extractor.version,
             "n": n, "s": seed}
    return cached("features", parts, compute)


def real_swd_descriptors(dataset: Dataset, n: int, seed: int = 0,
                         device: torch.device | str = "cpu") -> dict[int, torch.Tensor]:
    """Normalised SWD descriptors of ``n`` real images per pyramid level, {resolution: [n*128, D]}.

    Descriptors rather than the pyramid are cached: they are what every trial compares against,
    and reusing the same draw makes trials differ only by their fakes. ``n`` is capped at 16,384.
    """
    n = min(len(dataset), n, MAX_SWD_IMAGES)

    def compute() -> dict[str, torch.Tensor]:
        sets = swd_mod.descriptor_sets(real_subset(dataset, n, seed), seed=seed, device=device)
        return {str(res): d for res, d in sets.items()}

    parts = {"": dataset.key, "r": dataset.resolution, "n": n, "s": seed,
             "k": f"{swd_mod.NHOOD_SIZE}x{swd_mod.NHOODS_PER_IMAGE}"}
    return {int(k): v.to(device) for k, v in cached("swd", parts, compute).items()}
