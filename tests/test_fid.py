"""Fréchet distance against scipy, KID through torch-fidelity, and the missing-Inception error."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import scipy.linalg
import torch

from genas.errors import GenasError
from genas.evaluators import features
from genas.evaluators.fid import feature_stats, frechet_distance, kid


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENAS_CACHE", str(tmp_path / "cache"))


def ref_frechet(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def random_cov(rng, d, rank=None):
    a = rng.normal(size=(d, rank or 2 * d))
    return a @ a.T / a.shape[1]


@pytest.mark.parametrize("d", [2, 16, 64])
def test_frechet_matches_scipy(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_cov(rng, d), random_cov(rng, d)
    got = frechet_distance(torch.from_numpy(mu1), torch.from_numpy(s1), mu2, s2)
    assert got == pytest.approx(ref_frechet(mu1, s1, mu2, s2), rel=1e-8, abs=1e-8)


def test_frechet_singular_covariances_and_identity():
    rng = np.random.default_rng(7)
    mu, s1, s2 = rng.normal(size=32), random_cov(rng, 32, rank=8), random_cov(rng, 32, rank=5)
    got = frechet_distance(mu, s1, mu + 1, s2)
    assert got == pytest.approx(ref_frechet(mu, s1, mu + 1, s2), rel=1e-6)
    # sqrt of the rounding-level eigenvalues of a rank-8 product: ~1e-8 each, 1e-6 in all
    assert abs(frechet_distance(mu, s1, mu, s1)) < 1e-5 * np.trace(s1)


def test_feature_stats_float64():
    f = torch.randn(500, 6)
    mu, sigma = feature_stats(f)
    assert mu.dtype == sigma.dtype == torch.float64
    np.testing.assert_allclose(sigma.numpy(), np.cov(f.double().numpy(), rowvar=False), rtol=1e-10)


def test_kid_small_for_same_distribution():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 16, generator=gen), torch.randn(400, 16, generator=gen)
    same, _ = kid(a, b, subsets=20)
    slightly, _ = kid(a, b + 0.3, subsets=20)
    shifted, _ = kid(a, b + 1.0, subsets=20)
    assert abs(same) < slightly / 10 and slightly < shifted


def _no_inception_anywhere(tmp_path, monkeypatch):
    monkeypatch.delenv("GENAS_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_missing_inception_names_the_file(tmp_path, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    _no_inception_anywhere(tmp_path, monkeypatch)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tfi, "load_state_dict_from_url", offline)
    with pytest.raises(GenasError) as err:
        features.InceptionExtractor()
    msg = str(err.value)
    assert features.INCEPTION_FILE in msg
    assert features.INCEPTION_URL in msg
    assert "GENAS_INCEPTION_WEIGHTS" in msg and str(tmp_path / "hub" / "checkpoints") in msg


def test_missing_inception_without_network_fails_fast(tmp_path, monkeypatch):
    """The real download path, with every connection refused: an error, not a hang."""
    _no_inception_anywhere(tmp_path, monkeypatch)

    def refuse(*args, **kwargs):
        raise OSError("connections blocked by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    with pytest.raises(GenasError, match=features.INCEPTION_FILE):
        features.InceptionExtractor()
    assert socket.getdefaulttimeout() is None  # the download timeout does not leak


def test_inception_env_path_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAS_INCEPTION_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(GenasError, match="GENAS_INCEPTION_WEIGHTS"):
        features.InceptionExtractor()
