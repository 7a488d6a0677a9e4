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

__all__ = ["evaluate", "Scores", "real_counts", "check_metrics", "preflight", "available_metrics",
           "register_extractor", "Extractor"]

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


class Scores(dict):
    """The metrics, a plain ``{name: value}`` dict, plus ``counts``: the images behind each metric.

    ``counts`` holds ``<metric>_n_fake`` and ``<metric>_n_real`` for every metric asked for (``swd``,
    ``fid``, ``kid_digitnet`` …): what a trial records beside its metrics, so a number says which
    protocol made it.
    """

    counts: dict[str, int]


def real_counts(dataset: Dataset, *, swd_fakes: int, n_real: int | None = None) -> dict[str, int]:
    """The real images each kind of metric uses: the dataset's standard set, whatever the fakes.

    ``features`` (FID/KID): every image of the dataset up to 50,000 (``kid``'s kernel sees at most
    10,000 of them); ``swd``: as many as there are SWD fakes, up to ProGAN's 16,384 and the dataset's
    size. ``n_real`` caps both (benchmarks and tests; trials never pass it).
    """
    n = len(dataset)
    features = min(n, n_real or stats.MAX_FEATURE_IMAGES, stats.MAX_FEATURE_IMAGES)
    return {"features": features, "kid": min(features, stats.MAX_KID_ROWS),
            "swd": min(n, n_real or swd_fakes, stats.MAX_SWD_IMAGES)}


def evaluate(fake: torch.Tensor, dataset: Dataset, metrics: Sequence[str], *,
             device: torch.device | str = "cpu", n_real: int | None = None, seed: int = 0,
             swd_fakes: int | None = None, feature_fakes: int | None = None) -> Scores:
    """Score uint8 fake images [N, C, H, W] against ``dataset``; returns ``Scores`` (a dict).

    SWD uses the first ``swd_fakes`` fakes and FID/KID the first ``feature_fakes`` (default: all).
    The real side is the dataset's standard set, independent of the fakes for FID/KID (see
    ``real_counts``); ``n_real`` caps it. ``seed`` fixes the real subset, the SWD neighbourhoods and
    directions and the KID subsets, so trials are compared on equal terms.
    """
    check_metrics(metrics)
    if isinstance(metrics, str):
        metrics = [metrics]
    device = torch.device(device)
    fake = _prepare_fake(fake, dataset)
    out = Scores()
    out.counts = {}
    parsed = {name: _parse(name) for name in dict.fromkeys(metrics)}
    swd_fake = fake[:swd_fakes] if swd_fakes else fake
    feature_fake = fake[:feature_fakes] if feature_fakes else fake
    reals = real_counts(dataset, swd_fakes=len(swd_fake), n_real=n_real)

    if any(kind == "swd" for kind, _ in parsed.values()):
        start = time.perf_counter()
        real = stats.real_swd_descriptors(dataset, reals["swd"], seed=seed, device=device)
        # the fakes draw their own neighbourhoods: a seed unrelated to the real draw
        fake_desc = swd_mod.descriptor_sets(swd_fake, seed=seed + 1, device=device)
        out.update(swd_mod.swd_from_descriptors(fake_desc, real, seed=seed))
        out.counts.update(swd_n_fake=len(swd_fake), swd_n_real=reals["swd"])
        log.debug("swd in %.2fs", time.perf_counter() - start)

    for extractor_name in dict.fromkeys(x for _, x in parsed.values() if x is not None):
        start = time.perf_counter()
        extractor = get_extractor(extractor_name, device)
        real = stats.real_features(dataset, extractor, reals["features"], seed=seed)
        fake_feats = extractor.features(feature_fake)
        for name, (kind, x) in parsed.items():
            if x != extractor_name:
                continue
            if kind == "fid":
                mu, sigma = fid_mod.feature_stats(fake_feats)
                out[name] = fid_mod.frechet_distance(mu, sigma, real["mu"], real["sigma"], device=device)
            else:
                out[name] = fid_mod.kid(fake_feats, real["features"], seed=seed)[0]
            out.counts.update({f"{name}_n_fake": len(feature_fake),
                               f"{name}_n_real": reals["features" if kind == "fid" else "kid"]})
        log.debug("%s metrics in %.2fs", extractor_name, time.perf_counter() - start)
    return out
