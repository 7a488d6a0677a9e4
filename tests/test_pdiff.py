"""pdiff: stage-1 cache, autoencoder reconstruction, held-out isolation, errors, a tiny trial and its generator."""
from __future__ import annotations

import math

import optuna
import pytest
import torch

from genas.data import Dataset, load_dataset
from genas.errors import GenasError
from genas.spaces import TrialContext, generator_from_state, get_space
from genas.spaces.pdiff import checkpoints as stage1
from genas.spaces.pdiff import evaluate
from genas.spaces.pdiff.autoencoder import ParamAutoencoder, train_autoencoder
from genas.spaces.pdiff.checkpoints import Recipe, collect
from genas.spaces.pdiff.evaluate import SubsetEvaluator
from genas.spaces.pdiff.generator import PDiffGenerator
from genas.spaces.pdiff.space import _base_model
from genas.spaces.pdiff.splits import train_heldout

CPU = torch.device("cpu")
RECIPE = Recipe("convnet3", "norm2", 16, base_epochs=3)
TINY_CONFIG = {"k": 16, "noise_v": True, "xi_v": 1e-3, "noise_z": True, "xi_z": 0.1, "latent_channels": 4,
               "ae_depth": 3, "ae_channels": 16, "ddpm_steps": 200, "ddpm_lr": 1e-3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GENAS_CACHE", str(tmp_path_factory.mktemp("pdiff-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def ckpts(cache, digits, one_torch_thread):
    found, hit = collect(digits, RECIPE, CPU)
    assert not hit
    return found


@pytest.fixture(scope="module")
def trained(cache, digits, ckpts, one_torch_thread):
    """One tiny trial on digits through Space.train: (generator, reports, attrs, ctx)."""
    space = get_space("pdiff")
    study = optuna.create_study()
    study.enqueue_trial(TINY_CONFIG)
    reports, attrs = [], {}
    ctx = TrialContext(dataset=digits, budget="tiny", device=CPU, seed=0, options=space.resolve_options({}),
                       reporter=lambda s, m: reports.append((s, m)), attr_setter=attrs.__setitem__)
    config = space.suggest(study.ask(), ctx)
    assert config == TINY_CONFIG
    return space.train(config, ctx), reports, attrs, ctx


def held_out_accuracy(models, digits) -> list[float]:
    _, held = train_heldout(digits)
    with torch.no_grad():
        return [float((m(held.images).argmax(1) == held.labels).float().mean()) for m in models]


def test_split_is_fixed_stratified_and_disjoint(digits):
    train, held = train_heldout(digits)
    again, _ = train_heldout(digits)
    assert torch.equal(train.labels, again.labels) and torch.equal(train.images, again.images)
    assert len(train) + len(held) == len(digits) and 0.15 < len(held) / len(digits) < 0.25
    assert torch.bincount(held.labels).min() >= 15  # every class held out
    rows = {tuple(x.flatten().tolist()) for x in held.images}
    assert sum(tuple(x.flatten().tolist()) in rows for x in train.images) < 5  # digits has a few duplicate images


def test_stage1_is_cached_and_not_retrained(ckpts, digits, monkeypatch):
    monkeypatch.setattr(stage1, "_train", lambda *a, **k: pytest.fail("stage 1 retrained on a cache hit"))
    again, hit = collect(digits, RECIPE, CPU)
    assert hit and torch.equal(again.vectors, ckpts.vectors) and again.names == ckpts.names
    assert ckpts.vectors.shape == (16, 128)  # weight + bias of BN2 and BN3, 32 channels each
    model = _base_model(ckpts, digits)
    layers = [n.rsplit(".", 1)[0] for n in ckpts.names]
    assert ckpts.names[1::2] == [f"{n}.bias" for n in layers[::2]]
    bns = [name for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert layers[::2] == bns[-2:]  # the last two normalisation layers
    assert ckpts.base_accuracy > 0.9
    assert not (ckpts.vectors[1:] == ckpts.vectors[:-1]).all(1).any()  # every checkpoint is a new step


def test_autoencoder_reconstructs_its_checkpoints(ckpts, digits):
    torch.manual_seed(0)
    v = ckpts.vectors
    ae = ParamAutoencoder(v.shape[1], depth=3, channels=16, latent_channels=8)
    train_autoencoder(ae, v, steps=300, batch_size=16, lr=3e-3, xi_v=0.0, xi_z=0.0, on_step=lambda s, l: None)
    with torch.no_grad():
        recon = ae.decoder(ae.encode(v))[:, : v.shape[1]] * ae.scale + ae.mean
    spread = (v - v.mean(0)).norm(dim=1)
    assert ((recon - v).norm(dim=1) / spread).mean() < 0.3  # far closer to its own checkpoint than the mean is
    nearest = torch.cdist(recon, v).argmin(1)
    assert (nearest == torch.arange(v.shape[0])).float().mean() >= 0.75
    evaluator = SubsetEvaluator(_base_model(ckpts, digits), ckpts.names, ckpts.shapes, CPU)
    train, _ = train_heldout(digits)
    acc = lambda x: evaluate.accuracies(evaluator.predict(x, train).labels, train.labels)  # noqa: E731
    assert (acc(recon) - acc(v)).abs().max() < 0.01


def test_selection_sees_only_the_train_split(ckpts, digits, monkeypatch):
    train, held = train_heldout(digits)
    calls = []
    real_select = evaluate.select_best

    def spy(preds, labels):
        calls.append((preds.shape, labels))
        return real_select(preds, labels)

    monkeypatch.setattr(evaluate, "select_best", spy)
    evaluator = SubsetEvaluator(_base_model(ckpts, digits), ckpts.names, ckpts.shapes, CPU)
    generated = ckpts.vectors + 0.02 * torch.randn(ckpts.vectors.shape, generator=torch.Generator().manual_seed(1))
    clean = evaluate.report(evaluator, generated, ckpts.vectors, train, held, noise_models=8, seed=0)
    assert len(calls) == 3 and all(labels is train.labels for _, labels in calls)
    picked = [real_select(evaluator.predict(x, train).labels, train.labels) for x in (generated, ckpts.vectors)]

    # Poisoned held-out labels change every held-out number but not which model is selected.
    poisoned = type(held)(held.images, (held.labels + 1) % 10)
    bad = evaluate.report(evaluator, generated, ckpts.vectors, train, poisoned, noise_models=8, seed=0)
    assert bad["acc_mean"] < 0.2 < clean["acc_mean"]
    held_acc = evaluate.accuracies(evaluator.predict(generated, held).labels, held.labels)
    assert clean["acc_best"] == pytest.approx(float(held_acc[picked[0]]))
    poisoned_acc = evaluate.accuracies(evaluator.predict(generated, poisoned).labels, poisoned.labels)
    assert bad["acc_best"] == pytest.approx(float(poisoned_acc[picked[0]]))


def test_errors_are_one_line_and_early(digits):
    space = get_space("pdiff")
    cases = [({"arch": "resnet_nonexistent9"}, "timm does not know"),
             ({"k": 300}, "more than the 200 checkpoints"),
             ({"k": 20, "checkpoints": 16}, "more than the 16 checkpoints"),
             ({"arch": "mlp3", "subset": "norm2"}, "subset=norm2 needs two"),
             ({"arch": "convnext_tiny"}, "does not run on 1x8x8")]
    for options, text in cases:
        with pytest.raises(GenasError, match=text) as info:
            space.check(digits, space.resolve_options(options))
        assert "\n" not in str(info.value)
    with pytest.raises(GenasError, match="no class labels"):
        space.check(Dataset("faces", "faces", digits.images), space.resolve_options({}))
    assert space.settings("small", {"arch": "mlp3"})["subset"] == "all"  # the whole-model case
    with pytest.raises(GenasError, match="more than the 16 checkpoints"):  # the tiny budget's K_max
        space.check(digits, space.resolve_options({"k": 20}), budget="tiny")
    space.check(digits, space.resolve_options({}), budget="full")  # full's resnet18, resolved from "auto"
    space.check(digits, space.resolve_options({"arch": "resnet18"}))  # runs at 8x8 (1x1 maps from layer3 on)
    space.check(digits, space.resolve_options({"arch": "vit_tiny"}))


def test_train_refuses_a_k_beyond_the_checkpoints(cache, digits):
    space = get_space("pdiff")
    ctx = TrialContext(dataset=digits, budget="tiny", device=CPU, seed=0, options=space.resolve_options({}))
    with pytest.raises(GenasError, match="K=32 is more than the 16 checkpoints"):
        space.train({**TINY_CONFIG, "k": 32}, ctx)


def test_tiny_trial_generates_classifiers_above_chance(trained, digits):
    generator, reports, attrs, ctx = trained
    assert attrs["pdiff"]["stage1_cache"] == "hit" and attrs["pdiff"]["parameters"] == 128
    assert len(reports) == 2 and {"loss_ddpm", "acc_best_quick", "acc_median_quick"} <= set(reports[-1][1])
    assert all(math.isfinite(v) for _, m in reports for v in m.values())
    space = get_space("pdiff")
    attrs.clear()
    metrics = space.score(generator, ["acc_best"], ctx)
    nearest = attrs["pdiff_generated"]
    assert len(nearest["nearest_original"]) == 12 and all(0 <= i < 16 for i in nearest["nearest_original"])
    assert metrics["acc_best"] > 0.5 and metrics["acc_median"] > 0.5 and metrics["orig_best"] > 0.5
    assert {"ensemble_acc", "noise_mean", "iou_gen_nearest_orig", "iou_orig_orig", "dist_gen_nearest_orig"} <= set(metrics)
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("iou_gen_nearest_orig", "iou_gen_orig", "iou_noise_nearest_orig"))
    vectors = generator.sample(3, seed=5)
    assert vectors.shape == (3, 128) and vectors.dtype == torch.float32
    assert min(held_out_accuracy(generator.sample_models(2, seed=5), digits)) > 0.5


def test_state_round_trip_samples_the_same_models(trained, digits):
    generator = trained[0]
    config, tensors = generator.state()
    assert config["space"] == "pdiff" and not any(k.startswith(("encoder.", "ae.")) for k in tensors)
    again = generator_from_state(config, tensors)
    assert isinstance(again, PDiffGenerator)
    assert torch.equal(again.sample(4, seed=7), generator.sample(4, seed=7))
    assert not torch.equal(generator.sample(4, seed=7), generator.sample(4, seed=8))
    x = train_heldout(digits)[1].images[:64]
    with torch.no_grad():
        for a, b in zip(again.sample_models(2, seed=3), generator.sample_models(2, seed=3)):
            assert torch.equal(a(x), b(x))
    broken = {k: v for k, v in tensors.items() if not k.startswith("denoiser.out")}
    with pytest.raises(GenasError, match="does not match its config"):
        generator_from_state(config, broken)
    with pytest.raises(GenasError, match="not 'pdiff'"):
        PDiffGenerator.from_state({**config, "space": "dggan"}, tensors)
