"""The metric protocol: the real side is the dataset's standard set, every trial records its counts,
the pruner of an FID study reads a quick FID, and the Inception cache follows the weights file."""
from __future__ import annotations

import mlflow
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from genas.cli import cli
from genas.data import load_dataset
from genas.evaluators import features, stats
from genas.search.study import StudySpec, create_or_resume, open_storage
from genas.search.worker import run_worker
from genas.spaces.base import Space, get_space, register_space


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENAS_CACHE", str(tmp_path / "cache"))


class DigitsGenerator:
    """Returns real digits (a good generator) or blank images (a bad one)."""

    def __init__(self, good: bool) -> None:
        self.good = good

    def sample(self, n, seed=None):
        if not self.good:
            return torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
        real = load_dataset("digits").uint8()
        idx = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed or 0))[:n]
        return real[idx]

    def state(self):
        return {"space": "protocol"}, {"good": torch.tensor([float(self.good)])}

    @classmethod
    def from_state(cls, config, tensors):
        return cls(bool(tensors["good"][0]))


@register_space
class ProtocolSpace(Space):
    """Trains instantly; reports at a quarter and at all of its 4 images; trial 4 is bad."""

    name = "protocol"
    generator_cls = DigitsGenerator
    budgets = {"tiny": {"images_per_trial": 4, "eval_samples": 32, "swd_samples": 48, "quick_eval_samples": 16,
                        "trials": 5}}

    def suggest(self, trial, ctx):
        return {"x": trial.suggest_float("x", 0.0, 1.0)}

    def train(self, config, ctx):
        generator = DigitsGenerator(good=ctx.trial.number != 4)
        for done in (1, 4):  # the pruner (warm-up: 2 images) reads only the second
            ctx.advance(done, 4)
            ctx.report(done, ctx.quick_eval(generator))
        return generator


def _runs(home, study):
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name(f"genas/{study}")
    return client, {r.data.tags["genas.trial"]: r for r in client.search_runs([exp.experiment_id])
                    if "genas.trial" in r.data.tags}


def test_fid_study_is_pruned_on_quick_fid_and_records_its_counts(genas_home):
    spec = StudySpec("protocol", "digits", "tiny", ("fid_digitnet",), "random", "median", 0)
    study = run_worker(create_or_resume("p", spec, open_storage()), spec, n_trials=5, timeout=None, device="cpu")
    trials = study.get_trials()
    # the pruner reads fid_digitnet_quick from the warm-up on (half the trial's images), and stops the bad trial
    assert all(set(t.intermediate_values) == {4} for t in trials[:4]), [t.intermediate_values for t in trials]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4 + [TrialState.PRUNED]

    client, runs = _runs(genas_home, "p")
    params = runs["0"].data.params
    digits = len(load_dataset("digits"))
    assert {k: int(v) for k, v in params.items() if "_n_" in k} == {
        "fid_digitnet_n_fake": 32, "fid_digitnet_n_real": digits,  # the standard set: the whole dataset
        "swd_n_fake": 48, "swd_n_real": 48,  # SWD has its own count, real as many as fakes
        "fid_digitnet_quick_n_fake": 16, "fid_digitnet_quick_n_real": digits,
        "swd_quick_n_fake": 16, "swd_quick_n_real": 16}
    history = client.get_metric_history(runs["0"].info.run_id, "fid_digitnet_quick")
    assert [m.step for m in history] == [4]
    assert history[0].value == trials[0].intermediate_values[4]


def test_without_a_pruner_no_quick_fid_is_computed(genas_home):
    spec = StudySpec("protocol", "digits", "tiny", ("fid_digitnet",), "random", "none", 0)
    study = run_worker(create_or_resume("q", spec, open_storage()), spec, n_trials=1, timeout=None, device="cpu")
    assert study.trials[0].state == TrialState.COMPLETE
    client, runs = _runs(genas_home, "q")
    assert client.get_metric_history(runs["0"].info.run_id, "fid_digitnet_quick") == []
    assert len(client.get_metric_history(runs["0"].info.run_id, "swd_quick")) == 2


def test_full_budget_swd_is_progans_count():
    from genas.evaluators import real_counts

    for name in ("dcgan", "dggan", "progan", "mspgsen", "san"):
        full = get_space(name).budget("full")
        assert full["swd_samples"] == 16_384 and full["eval_samples"] == 10_000, name
    mnist = load_dataset("mnist5k")
    # a dataset with fewer images than 16,384 gives all of them; FID's side never depends on the fakes
    assert real_counts(mnist, swd_fakes=16_384)["swd"] == len(mnist)
    assert real_counts(mnist, swd_fakes=128)["features"] == real_counts(mnist, swd_fakes=16_384)["features"] == 5_000


def test_eval_prints_the_counts_and_uses_the_standard_real_set(genas_home, tmp_path):
    from PIL import Image

    digits = load_dataset("digits")
    folder = tmp_path / "fakes"
    folder.mkdir()
    for i, img in enumerate(digits.uint8()[:24]):
        Image.fromarray(img[0].numpy()).save(folder / f"{i}.png")
    out = CliRunner().invoke(cli, ["eval", "--dataset", "digits", "--fake", str(folder),
                                   "--metrics", "swd,fid_digitnet"])
    assert out.exit_code == 0, out.output
    values = dict(line.split("\t") for line in out.output.strip().splitlines())
    assert int(values["fid_digitnet_n_fake"]) == 24
    assert int(values["fid_digitnet_n_real"]) == len(digits)  # not 24: the real side is the whole dataset
    assert int(values["swd_n_fake"]) == int(values["swd_n_real"]) == 24


class _Pooled(torch.nn.Module):
    """Stands in for the Inception network: 2048 features from pooled pixels."""

    def forward(self, x):
        return (torch.nn.functional.adaptive_avg_pool2d(x.float(), 1).flatten(1).mean(1, keepdim=True)
                .expand(-1, 2048).contiguous(),)


def test_inception_cache_is_keyed_on_the_weights_file(tmp_path, monkeypatch):
    monkeypatch.setattr(features, "_build_inception", lambda path: _Pooled())
    weights = {}
    for name, content in (("a", b"weights A"), ("b", b"weights B"), ("a-copy", b"weights A")):
        weights[name] = tmp_path / f"{name}.pth"
        weights[name].write_bytes(content)
    versions = {}
    for name, path in weights.items():
        monkeypatch.setenv("GENAS_INCEPTION_WEIGHTS", str(path))
        versions[name] = features.InceptionExtractor().version
    assert versions["a"] != versions["b"] and versions["a"] == versions["a-copy"]

    digits = load_dataset("digits")
    for name in ("a", "b"):
        monkeypatch.setenv("GENAS_INCEPTION_WEIGHTS", str(weights[name]))
        stats.real_features(digits, features.InceptionExtractor(), 100)
    assert len(list((tmp_path / "cache" / "stats").glob("features-*.safetensors"))) == 2
