"""evaluate(): metric names, input checks, the real-statistics cache, digitnet."""
from __future__ import annotations

import pytest
import torch

from genas.data import load_dataset
from genas.errors import GenasError
from genas.evaluators import available_metrics, check_metrics, evaluate, features, stats


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GENAS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist5k")


@pytest.fixture(scope="module")
def shuffled(mnist):
    perm = torch.randperm(len(mnist), generator=torch.Generator().manual_seed(0))
    return mnist.uint8()[perm]


class MeanPool(features.Extractor):
    """A trivial extractor: 4x4 average-pooled pixels. Counts its calls."""

    name = "meanpool"
    dim = 16
    version = "1"
    calls = 0

    def __init__(self, device="cpu"):
        super().__init__(device, batch_size=100_000)  # one call per features() request

    def _forward(self, batch):
        type(self).calls += 1
        return torch.nn.functional.adaptive_avg_pool2d(batch.float().mean(1, keepdim=True), 4).flatten(1)


@pytest.fixture
def meanpool():
    features.register_extractor("meanpool", MeanPool)
    MeanPool.calls = 0
    yield MeanPool
    features.EXTRACTORS.pop("meanpool")
    features._instances.pop(("meanpool", "cpu"), None)


def test_metric_names():
    names = available_metrics()
    assert {"swd", "fid", "kid", "fid_digitnet", "kid_digitnet"} <= set(names)
    check_metrics(["swd", "fid", "kid_digitnet"])
    with pytest.raises(GenasError) as err:
        check_metrics(["swd", "fdi"])
    assert "'fdi'" in str(err.value) and "fid_digitnet" in str(err.value)
    with pytest.raises(GenasError, match="choose from"):
        check_metrics(["fid_inception"])  # plain "fid" is the Inception one


def test_registered_extractor_becomes_metrics(meanpool, mnist, shuffled):
    assert {"fid_meanpool", "kid_meanpool"} <= set(available_metrics())
    out = evaluate(shuffled[:200], mnist, ["fid_meanpool", "kid_meanpool"], n_real=500)
    assert set(out) == {"fid_meanpool", "kid_meanpool"}
    assert meanpool.calls == 2  # the real set and the fakes, once each, shared by FID and KID


def test_real_statistics_cached(meanpool, mnist, shuffled, tmp_path):
    first = evaluate(shuffled[:200], mnist, ["fid_meanpool"], n_real=500)
    calls = meanpool.calls
    second = evaluate(shuffled[:200], mnist, ["fid_meanpool"], n_real=500)
    assert meanpool.calls == calls + 1  # only the fakes the second time
    assert first == second
    files = sorted(p.name for p in (tmp_path / "cache" / "stats").iterdir())
    assert len(files) == 1 and files[0].endswith(".safetensors") and "meanpool" in files[0]
    evaluate(shuffled[:200], mnist, ["fid_meanpool"], n_real=400)  # another sample count: another entry
    assert len(list((tmp_path / "cache" / "stats").glob("*.safetensors"))) == 2


def test_swd_descriptors_cached(mnist, shuffled, monkeypatch):
    out1 = evaluate(shuffled[:100], mnist, ["swd"])
    real_calls = []
    original = stats.swd_mod.descriptor_sets
    monkeypatch.setattr(stats.swd_mod, "descriptor_sets",
                        lambda images, **kw: real_calls.append(len(images)) or original(images, **kw))
    out2 = evaluate(shuffled[:100], mnist, ["swd"])
    assert real_calls == [100]  # the fakes only: the real descriptors came from the cache
    assert out1 == out2 and set(out1) == {"swd", "swd_32", "swd_16"}


def test_digitnet_ranks_real_above_noise(mnist, shuffled):
    assert features.digitnet_info()["held_out_accuracy"] > 0.95
    metrics = ["swd", "fid_digitnet", "kid_digitnet"]
    good = evaluate(shuffled[:200], mnist, metrics, n_real=600)
    blurred = torch.nn.functional.avg_pool2d(shuffled[:200].float(), 3, 1, 1).to(torch.uint8)
    worse = evaluate(blurred, mnist, metrics, n_real=600)
    noise = evaluate(torch.randint(0, 256, (200, 1, 32, 32), dtype=torch.uint8), mnist, metrics, n_real=600)
    for name in metrics:
        assert good[name] < worse[name] < noise[name], (name, good, worse, noise)


def test_low_resolution_fakes_are_upsampled(mnist, shuffled):
    small = torch.nn.functional.avg_pool2d(shuffled[:64].float(), 2).to(torch.uint8)  # 16x16
    out = evaluate(small, mnist, ["swd", "fid_digitnet"], n_real=200)
    assert set(out) == {"swd", "swd_32", "swd_16", "fid_digitnet"}


def test_bad_inputs(mnist, shuffled):
    with pytest.raises(GenasError, match="channels"):
        evaluate(shuffled[:10].expand(-1, 3, -1, -1), mnist, ["swd"])
    with pytest.raises(GenasError, match="uint8"):
        evaluate(shuffled[:10].float(), mnist, ["swd"])
    with pytest.raises(GenasError, match="unknown metric"):
        evaluate(shuffled[:10], mnist, ["swd", "bogus"])


def test_digits_dataset_single_level():
    digits = load_dataset("digits")
    out = evaluate(digits.uint8()[:100], digits, ["swd", "kid_digitnet"], n_real=300)
    assert set(out) == {"swd", "swd_8", "kid_digitnet"}
