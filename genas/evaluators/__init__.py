"""Scoring generated images against a dataset: SWD, FID and KID.

``fid``/``kid`` use the standard Inception network; ``fid_<extractor>``/``kid_<extractor>`` use
another registered extractor (``digitnet`` ships with genas and works offline). ``swd`` also
returns ``swd_<res>`` for each Laplacian-pyramid level. Real-data statistics are cached on disk
(``stats.py``), so a trial only pays for its own fakes.

    >>> evaluate(fake_uint8, load_dataset("mnist5k"), ["swd", "fid_digitnet"])
    {'swd_32': ..., 'swd_16': ..., 'swd': ..., 'fid_digitnet': ...}
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from genas.data import Dataset
from genas.errors import GenasError
from genas.evaluators import fid as fid_mod
from genas.evaluators import stats
from genas.evaluators import swd as swd_mod
from genas.evaluators.features import EXTRACTORS, Extractor, get_extractor, register_extractor

__all__ = ["evaluate", "check_metrics", "preflight", "available_metrics", "register_extractor", "Extractor"]

log = logging.getLogger(__name__)

STANDARD_EXTRACTOR = "inception"  # plain ``fid``/``kid`` mean this one and no other


def available_metrics() -> list[str]:
    names = ["swd", "fid", "kid"]
    for extractor in sorted(EXTRACTORS):
        if extractor != STANDARD_EXTRACTOR:
            names += [f"fid_{extractor}", f"kid_{extractor}"]
    return names


def _parse(name: str) -> tuple[str, str | None]:
    """Metric name -> (kind, extractor): "swd" -> ("swd", None), "kid_digitnet" -> ("kid", "digitnet")."""
    if name == "swd":
        return "swd", None
    if name in ("fid", "kid"):
        return name, STANDARD_EXTRACTOR
    kind, _, extractor = name.partition("_")
    if kind in ("fid", "kid") and extractor in EXTRACTORS and extractor != STANDARD_EXTRACTOR:
        return kind, extractor
    raise GenasError(f"unknown metric {name!r}; choose from {', '.join(available_metrics())}")


def check_metrics(names: Sequence[str]) -> None:
    """Raise GenasError for an unknown metric name, before any work is done."""
    if isinstance(names, str):
        names = [names]
    if not names:
        raise GenasError(f"no metrics given; choose from {', '.join(available_metrics())}")
    for name in names:
        _parse(name)


def preflight(names: Sequence[str]) -> None:
    """Load every extractor the metrics need now, so missing weights fail before a study starts."""
    check_metrics(names)
    for extractor in dict.fromkeys(x for _, x in map(_parse, [names] if isinstance(names, str) else names)):
        if extractor is not None:
            get_extractor(extractor, "cpu")


def _prepare_fake(fake: torch.Tensor, dataset: Dataset) -> torch.Tensor:
    if not isinstance(fake, torch.Tensor) or fake.dtype != torch.uint8 or fake.dim() != 4:
        shape = tuple(fake.shape) if hasattr(fake, "shape") else type(fake).__name__
        raise GenasError(f"fake images must be a uint8 tensor [N, C, H, W], got {getattr(fake, 'dtype', '?')} "
                         f"{shape}; convert with genas.data.to_uint8")
    n, c, h, w = fake.shape
    if n < 2:
        raise GenasError(f"need at least 2 fake images to score, got {n}")
    if c != dataset.channels:
        raise GenasError(f"fake images have {c} channels but dataset {dataset.name} has {dataset.channels}; "
                         "generate images with the dataset's channel count")
    if h != w:
        raise GenasError(f"fake images must be square, got {h}x{w}")
    res = dataset.resolution
    if h != res:
        # A growing generator emits low-resolution images; nearest keeps its pixels as they are.
        # Larger fakes are averaged down so that high frequencies do not alias into the metrics.
        mode = "nearest" if h < res else "area"
        fake = F.interpolate(fake.float(), size=(res, res), mode=mode).round().clamp(0, 255).to(torch.uint8)
    return fake.cpu()


def evaluate(fake: torch.Tensor, dataset: Dataset, metrics: Sequence[str], *,
             device: torch.device | str = "cpu", n_real: int | None = None, seed: int = 0) -> dict[str, float]:
    """Score uint8 fake images [N, C, H, W] against ``dataset``.

    ``n_real`` caps the real images used (default: up to 50,000 for features; for SWD as many as
    there are fakes, at most 8,192, as in ProGAN). ``seed`` fixes the real subset, the SWD
    neighbourhoods and directions and the KID subsets, so trials are compared on equal terms.
    """
    check_metrics(metrics)
    if isinstance(metrics, str):
        metrics = [metrics]
    device = torch.device(device)
    fake = _prepare_fake(fake, dataset)
    out: dict[str, float] = {}
    parsed = {name: _parse(name) for name in dict.fromkeys(metrics)}

    if any(kind == "swd" for kind, _ in parsed.values()):
        start = time.perf_counter()
        real = stats.real_swd_descriptors(dataset, n_real or len(fake), seed=seed, device=device)
        # the fakes draw their own neighbourhoods: a seed unrelated to the real draw
        fake_desc = swd_mod.descriptor_sets(fake, seed=seed + 1, device=device)
        out.update(swd_mod.swd_from_descriptors(fake_desc, real, seed=seed))
        log.debug("swd in %.2fs", time.perf_counter() - start)

    for extractor_name in dict.fromkeys(x for _, x in parsed.values() if x is not None):
        start = time.perf_counter()
        extractor = get_extractor(extractor_name, device)
        real = stats.real_features(dataset, extractor, n_real, seed=seed)
        fake_feats = extractor.features(fake)
        for name, (kind, x) in parsed.items():
            if x != extractor_name:
                continue
            if kind == "fid":
                mu, sigma = fid_mod.feature_stats(fake_feats)
                out[name] = fid_mod.frechet_distance(mu, sigma, real["mu"], real["sigma"], device=device)
            else:
                out[name] = fid_mod.kid(fake_feats, real["features"], seed=seed)[0]
        log.debug("%s metrics in %.2fs", extractor_name, time.perf_counter() - start)
    return out
