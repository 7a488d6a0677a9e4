"""pdiff: stage-1 collection and cache, the layer option, autoencoder reconstruction, held-out isolation,
the memorisation controls, errors, a tiny trial and its generator."""
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
from genas.spaces.pdiff.checkpoints import Recipe, collect, finetune, heldout_positions
from genas.spaces.pdiff.classifiers import build_classifier, split_prefix, subset_names
from genas.spaces.pdiff.evaluate import SubsetEvaluator
from genas.spaces.pdiff.generator import PDiffGenerator
from genas.spaces.pdiff.space import _base_model
from genas.spaces.pdiff.splits import train_heldout

CPU = torch.device("cpu")
RECIPE = Recipe("convnet3", "norm2", 16, base_epochs=3, heldout=4)
TINY_CONFIG = {"noise_v": True, "xi_v": 1e-3, "noise_z": True, "xi_z": 0.1, "latent_channels": 4,
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
    # weight, bias, running mean and running variance of BN2 and BN3, 32 channels each; K + H checkpoints
    assert ckpts.vectors.shape == (20, 256)
    assert ckpts.train.shape == (16, 256) and ckpts.heldout.shape == (4, 256)
    model = _base_model(ckpts, digits)
    bns = [name for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert ckpts.names == [f"{bn}.{k}" for bn in bns[-2:] for k in ("weight", "bias", "running_mean", "running_var")]
    assert ckpts.base_accuracy > 0.9
    # a changed recipe is a new cache entry, never the old one
    assert stage1.cache_key(digits, RECIPE) != stage1.cache_key(digits, Recipe("convnet3", "norm2", 16, 3, 4, "step"))
    assert heldout_positions(16, 4) == [2, 7, 12, 17] and heldout_positions(5, 0) == []


def test_checkpoints_differ_in_running_statistics_and_predictions(ckpts, digits):
    """One checkpoint per augmented epoch, BatchNorm in train mode: the statistics move and so do the mistakes."""
    v = ckpts.vectors
    stat = torch.cat([torch.full((32,), n.endswith(("running_mean", "running_var"))) for n in ckpts.names])
    steps = (v[1:] - v[:-1]).abs()
    assert (steps[:, stat].amax(1) > 1e-3).all()  # every checkpoint has new running statistics
    assert (steps[:, ~stat].amax(1) > 1e-4).all()  # and new weights
    evaluator = SubsetEvaluator(_base_model(ckpts, digits), ckpts.names, ckpts.shapes, CPU)
    _, held = train_heldout(digits)
    preds = evaluator.predict(v, held).labels
    assert torch.unique(preds, dim=0).shape[0] >= 4  # several distinct prediction patterns among 20
    # the generated running statistics are the ones the model runs with
    broken = v[:1].clone()
    broken[0, stat] = broken[0, stat] * 3.0
    assert not torch.equal(evaluator.predict(broken, held).labels, preds[:1])


def test_the_layer_option_picks_which_normalisation_layers_are_generated(cache, digits):
    model = build_classifier("convnet3", 1, 8)
    bns = [name for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    shallow = subset_names(model, "norms:0,1")
    assert {n.rsplit(".", 1)[0] for n in shallow} == set(bns[:2])
    assert subset_names(model, "norms:-2,-1") == subset_names(model, "norm2")
    prefix, _ = split_prefix(model, shallow)
    assert len(prefix) == 1  # only the first conv is fixed in front of BN1
    assert len(subset_names(model, "all")) == len([k for k in model.state_dict() if "num_batches" not in k])
    found, hit = collect(digits, Recipe("convnet3", "norms:0,1", 3, base_epochs=1), CPU)
    assert not hit and found.names == shallow and found.vectors.shape == (3, 256)
    assert found.heldout.shape == (0, 256)
    base = _base_model(found, digits)
    assert torch.equal(base.state_dict()[bns[2] + ".running_var"], found.base_state[bns[2] + ".running_var"])


def test_autoencoder_reconstructs_its_checkpoints(ckpts, digits):
    torch.manual_seed(0)
    v = ckpts.vectors
    ae = ParamAutoencoder(v.shape[1], depth=3, channels=16, latent_channels=8)
    sizes = [int(torch.Size(s).numel()) for s in ckpts.shapes]
    train_autoencoder(ae, v, steps=300, batch_size=16, lr=3e-3, xi_v=0.0, xi_z=0.0, on_step=lambda s, l: None,
                      sizes=sizes)
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


def test_leave_one_out_and_nearer_controls_on_a_toy_case():
    # three originals wrong on {0, 1}, {0, 1, 2}, {3}: IoU(a, b) = 2/3, the third shares nothing
    wrong = torch.zeros(3, 6, dtype=torch.bool)
    wrong[0, [0, 1]] = wrong[1, [0, 1, 2]] = wrong[2, 3] = True
    loo = evaluate.leave_one_out_nearest_iou(wrong)
    assert loo.tolist() == pytest.approx([2 / 3, 2 / 3, 0.0])  # mean 4/9, not 1 (a model is not its own neighbour)
    assert evaluate.nearest_iou(wrong, wrong).tolist() == [1.0, 1.0, 1.0]
    assert evaluate.leave_one_out_nearest_iou(wrong[:1]).numel() == 0
    # P(generated nearer than a held-out checkpoint), ties count half
    assert evaluate.p_nearer(torch.tensor([1.0, 1.0]), torch.tensor([0.5, 1.0])) == pytest.approx(0.75)
    assert evaluate.p_nearer(torch.tensor([0.2]), torch.tensor([0.5, 0.9])) == 0.0
    assert evaluate.distinct_share(torch.tensor([[1, 2], [1, 2], [3, 2], [1, 2]])) == 0.5
    base = {"iou_heldout_nearest_orig": 0.8, "acc_median": 0.9, "orig_min": 0.95}
    assert evaluate.verdict({**base, "p_gen_nearer_than_ckpt": 0.9}) == "replica"
    assert evaluate.verdict({**base, "p_gen_nearer_than_ckpt": 0.5}) == "as new, weaker"
    assert evaluate.verdict({**base, "p_gen_nearer_than_ckpt": 0.5, "orig_min": 0.85}) == "as new"
    assert evaluate.verdict({**base, "iou_heldout_nearest_orig": 1.0, "p_gen_nearer_than_ckpt": 0.5}) == "ckpts alike"


def test_report_computes_the_controls(ckpts, digits):
    train, held = train_heldout(digits)
    evaluator = SubsetEvaluator(_base_model(ckpts, digits), ckpts.names, ckpts.shapes, CPU)
    calls = []

    def tune(starts, seed):
        calls.append(starts.shape[0])
        return finetune(ckpts, _base_model(ckpts, digits), train, starts, 3, seed, CPU)

    # "generated" = copies of the training checkpoints: the replica case the controls must expose
    copies = ckpts.train[[0, 3, 5, 9, 12, 15]]
    m = evaluate.report(evaluator, copies, ckpts.train, train, held, noise_models=4, seed=0,
                        heldout_ckpts=ckpts.heldout, finetune=tune, finetune_models=3)
    wrong = lambda x: evaluator.predict(x, held).labels != held.labels[None]  # noqa: E731
    assert m["iou_orig_nearest_orig"] == pytest.approx(float(evaluate.leave_one_out_nearest_iou(wrong(ckpts.train)).mean()))
    near_heldout = evaluate.nearest_iou(wrong(ckpts.heldout), wrong(ckpts.train))
    assert m["iou_heldout_nearest_orig"] == pytest.approx(float(near_heldout.mean()))
    assert m["iou_gen_nearest_orig"] == 1.0 and m["share_gen_identical_orig"] == 1.0 and m["dist_gen_nearest_orig"] == 0
    # copies are at least as near as any held-out checkpoint; a held-out one that is not a copy makes P > 0.5
    assert m["share_heldout_identical_orig"] < 1.0 and m["dist_heldout_nearest_orig"] > 0
    assert m["p_gen_nearer_than_ckpt"] == pytest.approx(evaluate.p_nearer(torch.ones(6), near_heldout))
    assert m["p_gen_nearer_than_ckpt"] > 0.5
    assert calls == [3] and {"finetune_mean", "iou_finetune_nearest_orig", "dist_finetune_nearest_orig"} <= set(m)
    assert 0 < m["distinct_orig"] <= 1 and m["heldout_ckpt_mean"] > 0.9


def test_finetuning_moves_a_checkpoint_reproducibly(ckpts, digits):
    train, _ = train_heldout(digits)
    start, model = ckpts.train[:2], _base_model(ckpts, digits)
    state = torch.random.get_rng_state()
    a = finetune(ckpts, model, train, start, 4, 7, CPU)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is untouched
    b = finetune(ckpts, _base_model(ckpts, digits), train, start, 4, 7, CPU)
    assert torch.equal(a, b) and not torch.equal(a, start)
    assert torch.equal(finetune(ckpts, _base_model(ckpts, digits), train, start, 0, 7, CPU), start)


def test_errors_are_one_line_and_early(digits):
    space = get_space("pdiff")
    cases = [({"arch": "resnet_nonexistent9"}, "timm does not know"),
             ({"arch": "mlp3", "subset": "norm2"}, "subset=norm2 needs two"),
             ({"arch": "convnet3", "subset": "norms:0,3"}, "has 3 normalisation layers"),
             ({"arch": "convnet3", "subset": "norms:a"}, "takes comma-separated integers"),
             ({"arch": "convnet3", "subset": "norms:1,-2"}, "names one layer twice"),
             ({"arch": "convnet3", "subset": "last2"}, "unknown subset 'last2'"),
             ({"collect": "batch"}, "unknown collect='batch'"),
             ({"heldout": "some"}, "heldout='some' is not a number"),
             ({"heldout": "-1"}, "heldout=-1 is negative"),
             ({"checkpoints": "-5"}, "checkpoints=-5 is negative"),
             ({"k": "8"}, "has no option k"),
             ({"arch": "convnext_tiny"}, "does not run on 1x8x8")]
    for options, text in cases:
        with pytest.raises(GenasError, match=text) as info:
            space.check(digits, space.resolve_options(options))
        assert "\n" not in str(info.value)
    with pytest.raises(GenasError, match="no class labels"):
        space.check(Dataset("faces", "faces", digits.images), space.resolve_options({}))
    assert space.settings("small", {"arch": "mlp3"})["subset"] == "all"  # the whole-model case
    assert space.settings("tiny", space.resolve_options({"heldout": "0", "checkpoints": "8"})) == {
        "arch": "convnet3", "subset": "norm2", "checkpoints": 8, "heldout": 0, "collect": "epoch", "models": 12}
    space.check(digits, space.resolve_options({}), budget="full")  # full's resnet18, resolved from "auto"
    space.check(digits, space.resolve_options({"arch": "resnet18"}))  # runs at 8x8 (1x1 maps from layer3 on)
    space.check(digits, space.resolve_options({"arch": "vit_tiny"}))


def test_trial_zero_is_the_source_setting():
    space = get_space("pdiff")
    (first,) = space.initial_trials("small")
    assert first == {"noise_v": True, "xi_v": 1e-3, "noise_z": True, "xi_z": 0.1, "ae_depth": 4}
    assert "k" not in first and space.leaderboard_columns["iou_gen_nearest_orig"]


def test_tiny_trial_generates_classifiers_above_chance(trained, digits):
    generator, reports, attrs, ctx = trained
    assert attrs["pdiff"]["stage1_cache"] == "hit" and attrs["pdiff"]["parameters"] == 256
    assert attrs["pdiff"]["checkpoints"] == 16 == generator.arch["k"]  # K is every training checkpoint collected
    assert len(reports) == 2 and {"loss_ddpm", "acc_best_quick", "acc_median_quick"} <= set(reports[-1][1])
    assert all(math.isfinite(v) for _, m in reports for v in m.values())
    space = get_space("pdiff")
    attrs.clear()
    metrics = space.score(generator, ["acc_best"], ctx)
    nearest = attrs["pdiff_generated"]
    assert len(nearest["nearest_original"]) == 12 and all(0 <= i < 16 for i in nearest["nearest_original"])
    assert metrics["acc_best"] > 0.5 and metrics["acc_median"] > 0.5 and metrics["orig_best"] > 0.5
    assert {"ensemble_acc", "noise_mean", "iou_gen_nearest_orig", "iou_orig_orig", "dist_gen_nearest_orig",
            "iou_orig_nearest_orig", "iou_heldout_nearest_orig", "p_gen_nearer_than_ckpt", "finetune_mean",
            "iou_finetune_nearest_orig", "distinct_orig", "heldout_ckpt_mean"} <= set(metrics)
    assert attrs["memorisation"] == evaluate.verdict(metrics)
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("iou_gen_nearest_orig", "iou_gen_orig", "iou_noise_nearest_orig"))
    vectors = generator.sample(3, seed=5)
    assert vectors.shape == (3, 256) and vectors.dtype == torch.float32
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
    assert tensors["norm.scale"].shape == (256,)  # one scale per generated tensor, spread over its coordinates
    older = generator_from_state(config, {**tensors, "norm.scale": tensors["norm.scale"][:1]})  # one global scale
    assert older.sample(1, seed=7).shape == (1, 256)
    broken = {k: v for k, v in tensors.items() if not k.startswith("denoiser.out")}
    with pytest.raises(GenasError, match="does not match its config"):
        generator_from_state(config, broken)
    with pytest.raises(GenasError, match="not 'pdiff'"):
        PDiffGenerator.from_state({**config, "space": "dggan"}, tensors)
