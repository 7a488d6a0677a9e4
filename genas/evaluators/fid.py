"""Fréchet distance between Gaussians fitted to features, and KID through torch-fidelity."""
from __future__ import annotations

import numpy as np
import torch

KID_SUBSETS = 100
KID_MAX_SUBSET = 1000

ArrayLike = torch.Tensor | np.ndarray


def feature_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance in float64."""
    f = features.double()
    return f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike,
                     device: torch.device | str | None = None) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2), in float64.

    tr sqrt(S1 S2) is the sum of the square roots of the eigenvalues of S1 S2: they are real and
    non-negative in exact arithmetic (S1 S2 is similar to a PSD matrix), so imaginary parts and
    small negative values are rounding and are dropped. This avoids the iterative sqrtm and its
    failures on singular covariances, and runs on the GPU.
    """
    if device is None:
        device = mu1.device if isinstance(mu1, torch.Tensor) else "cpu"
    mu1, sigma1, mu2, sigma2 = (torch.as_tensor(v).to(device=device, dtype=torch.float64)
                                for v in (mu1, sigma1, mu2, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shape mismatch: mu {tuple(mu1.shape)} vs {tuple(mu2.shape)}, "
                         f"sigma {tuple(sigma1.shape)} vs {tuple(sigma2.shape)}")
    eig = torch.linalg.eigvals(sigma1 @ sigma2)
    tr_covmean = eig.real.clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + torch.trace(sigma1) + torch.trace(sigma2) - 2 * tr_covmean)


def kid(fake_features: torch.Tensor, real_features: torch.Tensor, seed: int = 0,
        subsets: int = KID_SUBSETS) -> tuple[float, float]:
    """Kernel Inception Distance (mean, std over subsets), cubic polynomial kernel, torch-fidelity's estimator."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(KID_MAX_SUBSET, len(fake_features), len(real_features))
    if size < 2:
        raise ValueError("KID needs at least 2 fake and 2 real samples")
    out = kid_features_to_metric(fake_features.double().cpu(), real_features.double().cpu(),
                                 kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]
