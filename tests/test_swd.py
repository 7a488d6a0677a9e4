"""SWD pieces against a plain numpy/scipy re-implementation of the ProGAN protocol."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from genas.evaluators import swd


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENAS_CACHE", str(tmp_path / "cache"))


# ---- reference: loops and numpy, written from the paper's description, not from genas ----

KERNEL = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0


def ref_pyr_down(x):
    return scipy.ndimage.convolve(x, KERNEL[None, None], mode="mirror")[:, :, ::2, ::2]


def ref_pyr_up(x):
    n, c, h, w = x.shape
    up = np.zeros((n, c, 2 * h, 2 * w), x.dtype)
    up[:, :, ::2, ::2] = x
    return scipy.ndimage.convolve(up, KERNEL[None, None] * 4.0, mode="mirror")


def ref_laplacian(x, levels):
    pyr = [x.astype(np.float64)]
    for _ in range(1, levels):
        pyr.append(ref_pyr_down(pyr[-1]))
        pyr[-2] = pyr[-2] - ref_pyr_up(pyr[-1])
    return pyr


def ref_descriptors(level, img, ys, xs, size):
    h = size // 2
    out = np.zeros((len(img), level.shape[1], size, size))
    for m in range(len(img)):
        for c in range(level.shape[1]):
            for dy in range(size):
                for dx in range(size):
                    out[m, c, dy, dx] = level[img[m], c, ys[m] - h + dy, xs[m] - h + dx]
    return out


def ref_normalize(desc):
    desc = desc.copy()
    for c in range(desc.shape[1]):
        vals = desc[:, c]
        desc[:, c] = (vals - vals.mean()) / vals.std()
    return desc.reshape(len(desc), -1)


def ref_sliced(a, b, dirs):
    results = []
    for rep in range(dirs.shape[0]):
        d = dirs[rep]
        pa = np.sort(a @ d, axis=0)
        pb = np.sort(b @ d, axis=0)
        results.append(np.mean(np.abs(pa - pb)))
    return float(np.mean(results))


# ---- tests ----

def test_pyramid_levels():
    assert swd.pyramid_resolutions(128) == [128, 64, 32, 16]
    assert swd.pyramid_resolutions(32) == [32, 16]
    assert swd.pyramid_resolutions(16) == [16]
    assert swd.pyramid_resolutions(8) == [8]
    assert swd.nhood_size(32) == 7 and swd.nhood_size(4) == 3


def test_pyramid_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(3, 2, 32, 32))
    got = swd.laplacian_pyramid(torch.from_numpy(x).double(), 3)
    want = ref_laplacian(x, 3)
    assert [g.shape[-1] for g in got] == [32, 16, 8]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-9, atol=1e-9)


def test_pyramid_reconstructs_image():
    x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    lap = swd.laplacian_pyramid(x, 3)
    rec = lap[-1]
    for band in reversed(lap[:-1]):
        rec = swd.pyr_up(rec) + band
    torch.testing.assert_close(rec, x)


def test_descriptors_match_loops():
    rng = np.random.default_rng(1)
    level = rng.normal(size=(4, 3, 16, 16))
    gen = torch.Generator().manual_seed(0)
    img, ys, xs = swd.random_centres(4, 16, 16, 5, 7, gen)
    assert int(ys.min()) >= 3 and int(ys.max()) <= 12 and int(xs.max()) <= 12
    got = swd.extract_descriptors(torch.from_numpy(level), img, ys, xs, 7)
    want = ref_descriptors(level, img.numpy(), ys.numpy(), xs.numpy(), 7)
    np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_allclose(swd.normalize_descriptors(got.double()).numpy(), ref_normalize(want),
                               rtol=1e-6, atol=1e-6)


def test_sliced_distance_matches_numpy():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 12)).astype(np.float32)
    b = (rng.normal(size=(200, 12)) * 1.5 + 0.3).astype(np.float32)
    dirs = swd.random_directions(12, torch.Generator().manual_seed(3), repeats=4, per_repeat=16)
    np.testing.assert_allclose(np.linalg.norm(dirs.numpy(), axis=1), 1.0, rtol=1e-6)
    got = swd.sliced_wasserstein(torch.from_numpy(a), torch.from_numpy(b), dirs)
    assert got == pytest.approx(ref_sliced(a, b, dirs.numpy()), rel=1e-5)
    assert swd.sliced_wasserstein(torch.from_numpy(a), torch.from_numpy(a), dirs) == 0.0


def test_descriptor_sets_shapes():
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    sets = swd.descriptor_sets(images, seed=0, batch_size=4)
    assert sorted(sets) == [16, 32]
    assert sets[32].shape == (6 * 128, 3 * 49)
    assert torch.allclose(sets[32].view(-1, 3, 49).mean(dim=(0, 2)), torch.zeros(3), atol=1e-4)
    small = swd.descriptor_sets(torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8), seed=0)
    assert sorted(small) == [8] and small[8].shape == (5 * 128, 49)


def test_swd_separates_data_from_noise():
    from genas.data import load_dataset

    ds = load_dataset("mnist5k")
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    images = ds.uint8()[perm]
    half_a, half_b = images[:300], images[300:600]
    noise = torch.randint(0, 256, half_a.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    real = swd.descriptor_sets(half_b, seed=0)
    same = swd.swd_from_descriptors(swd.descriptor_sets(half_a, seed=1), real)
    diff = swd.swd_from_descriptors(swd.descriptor_sets(noise, seed=1), real)
    assert set(same) == {"swd", "swd_32", "swd_16"}
    assert same["swd"] == pytest.approx((same["swd_32"] + same["swd_16"]) / 2)
    assert same["swd"] * 5 < diff["swd"], (same, diff)


def test_odd_sides_keep_every_other_pixel():
    """33x33 (an odd side at any level) used to crash on 34 != 33; the levels are now ceil(side / 2)."""
    from genas.data import Dataset
    from genas.evaluators import evaluate

    assert swd.pyramid_resolutions(33) == [33, 17]
    assert swd.pyramid_resolutions(31) == [31, 16]
    assert swd.pyramid_resolutions(66) == [66, 33, 17]
    x = np.random.default_rng(4).uniform(0, 255, size=(2, 1, 33, 33))
    lap = swd.laplacian_pyramid(torch.from_numpy(x), 2)
    assert [level.shape[-1] for level in lap] == [33, 17]
    low = ref_pyr_down(x)
    up = np.zeros_like(x)  # zeros between the kept samples, on the finer level's own grid
    up[:, :, ::2, ::2] = low
    band = x - scipy.ndimage.convolve(up, KERNEL[None, None] * 4.0, mode="mirror")
    np.testing.assert_allclose(lap[0].numpy(), band, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose((swd.pyr_up(lap[1], (33, 33)) + lap[0]).numpy(), x, rtol=1e-9, atol=1e-9)

    images = torch.randint(0, 256, (40, 1, 33, 33), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    odd = Dataset("odd", "odd-33", images.float() / 127.5 - 1)
    out = evaluate(images[:20], odd, ["swd"])
    assert set(out) == {"swd", "swd_33", "swd_17"} and out.counts == {"swd_n_fake": 20, "swd_n_real": 20}
