"""progan: the fixed schedule reaches the dataset resolution and a tiny trial trains through it."""
from __future__ import annotations

import math

import optuna
import pytest
import torch

from genas.data import Dataset
from genas.errors import GenasError
from genas.spaces import TrialContext, generator_from_state, get_space
from genas.spaces.gan.grown import resolution_of
from genas.spaces.progan.train import ProGANGenerator, schedule, width_at


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_schedule_reaches_the_dataset_resolution():
    assert schedule(4) == [4]
    assert schedule(32) == [4, 8, 16, 32]
    with pytest.raises(GenasError):
        schedule(24)
    assert [width_at(r, 64) for r in (4, 8, 16, 32, 64, 1024)] == [64, 64, 64, 32, 16, 8]


def test_the_ema_half_life_is_at_most_a_tenth_of_a_phase(monkeypatch):
    # tiny on 16x16 is three phases of 341 images: the budget's 100 is capped at 34.1
    import genas.spaces.progan.train as progan_train

    half_lives = []
    ema = progan_train.EMA

    def recording_ema(G, half_life, **kw):  # noqa: ANN001, ANN202
        half_lives.append(half_life)
        return ema(G, half_life, **kw)

    monkeypatch.setattr(progan_train, "EMA", recording_ema)
    space = get_space("progan")
    data = Dataset("random", "random16", torch.rand(64, 1, 16, 16) * 2 - 1)
    ctx = TrialContext(dataset=data, budget="tiny", device=torch.device("cpu"), seed=0,
                       options=space.resolve_options({}))
    space.train({"lr": 1e-3, "width": 8, "latent": 16, "r1_gamma": 1.0}, ctx)
    assert half_lives == [pytest.approx(34.1)] * 3


def test_a_trial_trains_on_a_dggan_lineage_of_images():
    progan, dggan = get_space("progan"), get_space("dggan")
    for name in ("tiny", "small", "full"):
        b = progan.budget(name)
        s = dggan.settings(dggan.resolve_options({}), name, 32)
        assert b["images_per_trial"] == s["lineage_images"]
        assert abs(sum(s["schedule"]) - b["images_per_trial"]) <= (s["generations"] + 1) * s["batch_size"]
        assert {"images_per_trial", "batch_size", "eval_samples", "quick_eval_samples", "reports", "trials"} <= set(b)


def test_tiny_trial_trains_the_whole_schedule():
    space = get_space("progan")
    data = Dataset("random", "random16", torch.rand(64, 1, 16, 16) * 2 - 1)
    study = optuna.create_study()
    study.enqueue_trial({"lr": 1e-3, "width": 8, "latent": 16, "r1_gamma": 1.0})
    reports, attrs, saved = [], {}, []
    ctx = TrialContext(dataset=data, budget="tiny", device=torch.device("cpu"), seed=0,
                       options=space.resolve_options({}),
                       reporter=lambda s, m: reports.append((s, m)), attr_setter=attrs.__setitem__,
                       state_saver=lambda c, t: saved.append((c, t)))
    config = space.suggest(study.ask(), ctx)
    gen = space.train(config, ctx)
    assert resolution_of(attrs["arch"]) == 16
    assert [len(s) for s in attrs["arch"]["g"]] == [1, 2, 2] and [len(s) for s in attrs["arch"]["d"]] == [0, 2, 2]
    assert len(reports) == space.budget("tiny")["reports"]
    assert all(math.isfinite(v) for _, m in reports for v in m.values())
    images = gen.sample(4, seed=3)
    assert images.shape == (4, 1, 16, 16) and images.dtype == torch.uint8
    state = gen.state()
    assert state[0]["space"] == "progan" and saved[0][0]["space"] == "progan"
    again = generator_from_state(*state)
    assert isinstance(again, ProGANGenerator) and torch.equal(again.sample(4, seed=3), images)
