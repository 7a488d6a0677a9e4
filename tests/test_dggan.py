"""dggan: growth keeps the parent's function at alpha 0, weights are inherited, candidates train and chain."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch
import torch.nn.functional as F

from genas.data import Dataset
from genas.errors import GenasError, TrainingDiverged
from genas.spaces import TrialContext, generator_from_state, get_space
from genas.spaces.dggan import DGGANGenerator
from genas.spaces.dggan.actions import apply_action, channels_at, child_actions, kernels_at, legal_kinds
from genas.spaces.gan.grown import Nets, finalize, inherit, resolution_of, root_arch


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def dataset(res: int = 8, n: int = 64) -> Dataset:
    g = torch.Generator().manual_seed(0)
    return Dataset("random", f"random{res}", torch.rand(n, 1, res, res, generator=g) * 2 - 1)


def grown(actions: list[dict], seed: int = 0) -> Nets:
    torch.manual_seed(seed)
    nets = Nets(root_arch(8, 1, 8, 3))
    for a in actions:
        nets = finalize(inherit(nets.tensors(), *apply_action(nets.arch, a)))
    return nets


def child(parent: Nets, action: dict) -> Nets:
    nets = inherit(parent.tensors(), *apply_action(parent.arch, action))
    nets.set_alpha(0.0)
    return nets


G3 = {"action": "g_layer", "channels": 16, "kernel": 5}
D3 = {"action": "d_layer", "channels": 16, "kernel": 1}
GROW = {"action": "grow", "channels": 8, "kernel": 3}


@pytest.mark.parametrize("history", [[], [GROW], [G3, D3, GROW, D3]])
def test_grow_at_alpha_0_is_the_upsampled_parent(history):
    parent = grown(history)
    nets = child(parent, GROW)
    z = torch.randn(6, 8)
    assert resolution_of(nets.arch) == 2 * resolution_of(parent.arch)
    assert torch.equal(nets.G(z), F.interpolate(parent.G(z), scale_factor=2, mode="nearest"))
    assert torch.equal(nets.G_ema(z), F.interpolate(parent.G_ema(z), scale_factor=2, mode="nearest"))


@pytest.mark.parametrize("history", [[], [GROW, G3]])
def test_layers_at_alpha_0_leave_outputs_unchanged(history):
    parent = grown(history)
    z, img = torch.randn(6, 8), torch.randn(6, 1, resolution_of(parent.arch), resolution_of(parent.arch))
    for action in (G3, D3):
        nets = child(parent, action)
        assert torch.equal(nets.G(z), parent.G(z))
        assert torch.equal(nets.D(img), parent.D(img))
        nets.set_alpha(1.0)  # the new layer now counts
        changed = nets.G(z) if action is G3 else nets.D(img)
        assert not torch.equal(changed, parent.G(z) if action is G3 else parent.D(img))


def test_existing_layers_inherit_parent_and_ema_weights():
    parent = grown([GROW])
    with torch.no_grad():  # make EMA differ from G so that we see which one each copy comes from
        for p in parent.G_ema.parameters():
            p.add_(1.0)
    for action in (G3, D3, GROW):
        nets = child(parent, action)
        for prefix in ("G.", "G_ema.", "D."):
            own = {k: v for k, v in nets.state_dict().items() if k.startswith(prefix)}
            for key, value in parent.state_dict().items():
                if not key.startswith(prefix) or "rgb" in key:
                    continue
                assert torch.equal(own[key], value), key
        new = set(nets.state_dict()) - set(parent.state_dict()) - {k for k in nets.state_dict() if "rgb" in k}
        assert new, "the action added no layer"
        for key in new:  # new layers start from the same fresh weights in G and G_ema
            if key.startswith("G."):
                assert torch.equal(nets.state_dict()[key], nets.state_dict()["G_ema." + key[2:]])


def test_train_on_keeps_the_networks_and_fades_nothing():
    parent = grown([GROW])
    nets = inherit(parent.tensors(), *apply_action(parent.arch, {"action": "train", "channels": 8, "kernel": 3}))
    assert nets.arch == parent.arch and nets.fades == {"g": None, "d": None}
    assert all(torch.equal(v, parent.state_dict()[k]) for k, v in nets.state_dict().items())


def test_a_grow_never_takes_a_1x1_kernel():
    with pytest.raises(GenasError, match="spatial kernel"):
        apply_action(root_arch(8, 1, 8, 3), {"action": "grow", "channels": 8, "kernel": 1})
    rng = np.random.default_rng(0)
    for _ in range(20):
        acts = child_actions(root_arch(8, 1, 8, 3), 32, None, children=6, channels=(8, 16), kernels=(1, 3),
                             max_layers=3, rng=rng)
        assert all(a["kernel"] >= 3 for a in acts if a["action"] == "grow")


def test_lineages_grow_first_and_keep_the_dataset_resolution_in_reach():
    root = root_arch(8, 1, 8, 3)  # 4x4; 32x32 is 3 grows away
    assert legal_kinds(root, 32, None, 3) == ["train", "g_layer", "d_layer", "grow"]  # past the plan
    assert legal_kinds(root, 32, 4, 3) == ["grow"]  # within it, below 32x32: grow first
    assert legal_kinds(root, 32, 2, 3) == ["grow"]  # the last chance to get there
    assert legal_kinds(root, 32, 1, 3) == []  # out of reach: no child at all
    full, _ = apply_action(apply_action(root, GROW)[0], GROW)
    assert legal_kinds(full, 16, 5, 3) == ["train", "g_layer", "d_layer"]  # at the dataset's resolution
    assert legal_kinds(full, 16, 0, 3) == ["train", "g_layer", "d_layer"]
    deep = grown([G3, G3])
    assert "g_layer" not in legal_kinds(deep.arch, 32, None, 3)  # three convs in G's top stage


def test_widths_follow_progans_rule_above_16x16():
    assert channels_at((32, 64), 8) == channels_at((32, 64), 16) == (32, 64)
    assert channels_at((32, 64), 32) == (16, 32) and channels_at((32, 64), 128) == (8,)
    at16, _ = apply_action(apply_action(root_arch(8, 1, 64, 3), GROW)[0], GROW)  # 16x16
    for a in child_actions(at16, 32, None, children=9, channels=(32, 64), kernels=(3,), max_layers=3,
                           rng=np.random.default_rng(0)):
        if a["action"] == "grow":
            assert a["channels"] in (16, 32)  # the 32x32 stage
        elif a["action"] != "train":
            assert a["channels"] in (32, 64)


def test_kernels_above_8x8_are_at_most_3x3():
    assert kernels_at((3, 5), 4) == kernels_at((3, 5), 8) == (3, 5)
    assert kernels_at((3, 5), 16) == (3,) and kernels_at((1, 3, 7), 32) == (1, 3)
    at8, _ = apply_action(root_arch(8, 1, 8, 5), GROW)
    seen = set()
    for seed in range(10):
        for a in child_actions(at8, 32, None, children=6, channels=(8, 16), kernels=(3, 5), max_layers=3,
                               rng=np.random.default_rng(seed)):
            if a["action"] == "grow":
                assert a["kernel"] == 3  # the 16x16 stage
            elif a["action"] != "train":
                seen.add(a["kernel"])  # a layer at 8x8 may still take 5x5
    assert seen == {3, 5}


def test_child_actions_are_the_control_and_distinct_growths():
    rng = np.random.default_rng(1)
    at8, _ = apply_action(root_arch(8, 1, 8, 3), GROW)
    acts = child_actions(at8, 8, 1, children=3, channels=(8, 16), kernels=(3, 5), max_layers=3, rng=rng)
    assert acts[0] == {"action": "train", "channels": 8, "kernel": 3} and len(acts) == 4
    keys = {tuple(sorted(a.items())) for a in acts}
    assert len(keys) == 4 and all(a["action"] in ("g_layer", "d_layer") for a in acts[1:])
    for left in (3, 2):  # below 32x32 a lineage only grows, in distinct ways
        forced = child_actions(root_arch(8, 1, 8, 3), 32, left, children=3, channels=(8, 16), kernels=(3, 5),
                               max_layers=3, rng=rng)
        assert len(forced) == 3 and all(a["action"] == "grow" for a in forced)
        assert len({tuple(sorted(a.items())) for a in forced}) == 3


def test_the_planned_trial_count_is_the_beams():
    space = get_space("dggan")
    options = space.resolve_options({})
    # small on 32x32: 4 roots, 3 generations of one grow (k 1), then control + growth, the finalist
    assert space.default_trials("small", options, 32) == 4 + 3 * 1 + 1 * 2 + 1
    assert space.default_trials("tiny", options, 32) == 2 + 3 * 1 + 1 * 2 + 1  # k 1, children 1
    two = space.resolve_options({"layers": "2"})  # a grown stage already holds its 2 convs: the control alone
    assert space.default_trials("tiny", two, 32) == 2 + 3 * 1 + 1 + 1
    assert space.default_trials("full", options, 32) == 6 + 3 * 9 + 3 * 4 + 1  # k 3, children 3
    assert space.default_trials("small", space.resolve_options({"generations": "5"}), 32) == 4 + 3 + 2 + 2 + 1
    assert space.default_trials("small", space.resolve_options({"finish": "0"}), 32) == 4 + 3 * 1 + 1 * 2
    assert space.default_trials("small", space.resolve_options({"k": "2"}), 32) == 4 + 3 * 2 + 2 * 2 + 1


def test_roots_differ_and_children_inherit_the_lineage_hyperparameters():
    space = get_space("dggan")
    options = space.resolve_options({})
    roots = space.root_actions(space.resolve_options({"widths": "32,64"}), "small", 32, np.random.default_rng(0))
    assert len(roots) == space.budget("small")["roots"]
    assert len({(r["channels"], r["kernel"]) for r in roots}) == len(roots)  # different widths / kernels
    # the budget's one width and two kernels: each cell of the grid twice (the same networks, other seeds)
    cells = [(r["channels"], r["kernel"]) for r in space.root_actions(options, "small", 32, np.random.default_rng(0))]
    assert sorted(set(cells)) == [(32, 3), (32, 5)] and all(cells.count(c) == 2 for c in set(cells))
    assert all(r["lr"] == space.budget("small")["lr"] for r in roots)  # a 4x4 winner's lr does not carry to 32x32
    assert {r["lr"] for r in space.root_actions(space.resolve_options({"lr": "0.001"}), "small", 32,
                                                  np.random.default_rng(0))} == {1e-3}
    kids = space.child_actions(roots[1], root_arch(64, 1, roots[1]["channels"], roots[1]["kernel"]), 3, options,
                               "small", 32, np.random.default_rng(1))
    assert kids and all(k["lr"] == roots[1]["lr"] for k in kids)
    for a in roots + kids:
        assert all(a[k] in space.action_params[k] for k in ("action", "channels", "kernel"))


def test_images_per_candidate_reach_the_budgets_lineage():
    from genas.spaces.gan.budgets import IMAGES

    space = get_space("dggan")
    for res, generations in ((32, 4), (8, 2), (64, 5)):
        s = space.settings(space.resolve_options({}), "small", res)
        assert s["generations"] == generations and len(s["schedule"]) == generations + 1
        assert all(n % s["batch_size"] == 0 for n in s["schedule"])
        assert abs(sum(s["schedule"]) - IMAGES["small"]) <= (generations + 1) * s["batch_size"]
        assert s["schedule"] == sorted(s["schedule"])  # later generations train longer
        assert space.images_at(s, generations + 1) == s["finish"] == IMAGES["small"]  # the finalist: a lineage's images
        assert space.images_at(s, generations + 3) == s["schedule"][-1]  # past the plan: as the last one
    s = space.settings(space.resolve_options({"images": "1000", "ratio": "1", "generations": "6", "widths": "16,32"}),
                       "small", 32)
    assert (s["schedule"], s["generations"], s["widths"]) == ([1008] * 7, 6, (16, 32))  # whole batches of 16
    with pytest.raises(GenasError, match="widths"):
        space.settings(space.resolve_options({"widths": "16,33"}), "small", 32)
    assert space.beam(space.resolve_options({"finish": "0"}), "small", 32)["finish"] is False
    assert space.settings(space.resolve_options({"finish": "1000"}), "small", 32)["finish"] == 1008
    with pytest.raises(GenasError, match="finish"):
        space.check(dataset(32), space.resolve_options({"finish": "-5"}), budget="small")


def test_r1_gamma_is_ten_unless_the_study_sets_it():
    from genas.spaces.gan.losses import R1_GAMMA

    space, data = get_space("dggan"), dataset(32)
    assert R1_GAMMA == 10.0
    assert space.settings(space.resolve_options({}), "small", 32)["r1_gamma"] == R1_GAMMA
    assert space.settings(space.resolve_options({"r1_gamma": "2.5"}), "small", 32)["r1_gamma"] == 2.5
    with pytest.raises(GenasError, match="r1_gamma=-1 must be >= 0"):
        space.check(data, space.resolve_options({"r1_gamma": "-1"}), budget="small")


def test_state_round_trip_samples_identically():
    nets = grown([GROW, G3])
    gen = DGGANGenerator(nets.arch, nets.G_ema)
    config, tensors = gen.state()
    assert config["space"] == "dggan"
    again = generator_from_state(config, tensors)
    a, b = gen.sample(300, seed=7), again.sample(300, seed=7)
    assert a.dtype == torch.uint8 and a.shape == (300, 1, 8, 8)
    assert torch.equal(a, b)
    assert not torch.equal(a, again.sample(300, seed=8))


def test_from_state_rejects_mismatched_checkpoints():
    gen = DGGANGenerator(grown([GROW]).arch, grown([GROW]).G_ema)
    config, tensors = gen.state()
    with pytest.raises(GenasError, match="space"):
        DGGANGenerator.from_state({**config, "space": "progan"}, tensors)
    with pytest.raises(GenasError, match="does not match its config"):
        DGGANGenerator.from_state(config, {k: v for k, v in tensors.items() if "to_rgb" not in k})
    with pytest.raises(GenasError, match="does not match its config"):
        DGGANGenerator.from_state(config, {**tensors, "extra": torch.zeros(1)})
    bigger, _ = apply_action(config["arch"], G3)
    with pytest.raises(GenasError, match="does not match its config"):
        DGGANGenerator.from_state({**config, "arch": bigger}, tensors)
    wide = {**config, "arch": {**config["arch"], "g_dense": 16}}
    with pytest.raises(GenasError, match="does not match its config"):
        DGGANGenerator.from_state(wide, tensors)
    with pytest.raises(GenasError, match="does not match its config"):
        DGGANGenerator.from_state({**config, "arch": {"g": 1}}, tensors)


class Recorder:
    """A TrialContext from plain callables; the saved state is what the next child gets."""

    def __init__(self) -> None:
        self.reports, self.attrs, self.saved, self.ticks = [], {}, None, []

    def ctx(self, data: Dataset, parent=None, seed: int = 0, budget: str = "tiny",
            options: dict | None = None) -> TrialContext:
        return TrialContext(dataset=data, budget=budget, device=torch.device("cpu"), seed=seed, options=options or {},
                            reporter=lambda s, m: self.reports.append((s, m)),
                            quick_evaluator=lambda g: {"swd_quick": float(g.sample(8, seed=0).float().mean())},
                            parent_loader=lambda: parent, state_saver=self.save,
                            attr_setter=self.attrs.__setitem__, progress=lambda d, t: self.ticks.append((d, t)))

    def save(self, config: dict, tensors: dict) -> None:
        self.saved = (config, tensors)


def suggest(space, parent, action: dict, lr: float = 1e-3) -> dict:
    study = optuna.create_study()
    study.enqueue_trial({**action, "lr": lr})
    trial = study.ask()
    trial.set_user_attr("parent", parent)
    return space.suggest(trial, None)


def test_root_then_children_train_and_report():
    space, data = get_space("dggan"), dataset(8)
    s = space.settings(space.resolve_options({}), "tiny", 8)
    images = space.images_at(s, 0)  # the candidates below are all of generation 0's length
    rec = Recorder()
    config = suggest(space, None, {"action": "root", "channels": 8, "kernel": 3})
    assert config["parent"] is None and config["action"] == "root"
    gen = space.train(config, rec.ctx(data))
    assert len(rec.reports) == s["reports"]
    assert rec.reports[-1][0] == images
    assert {"loss_d", "loss_g", "d_real", "d_fake", "swd_quick"} <= set(rec.reports[-1][1])
    assert all(math.isfinite(v) for _, m in rec.reports for v in m.values())
    assert rec.ticks[-1] == (images, images)
    assert gen.sample(5, seed=1).shape == (5, 1, 4, 4)
    assert rec.attrs["resolution"] == 4 and rec.attrs["full_resolution"] is False
    for action in ({"action": "grow", "channels": 16, "kernel": 5}, {"action": "d_layer", "channels": 8, "kernel": 1},
                   {"action": "train", "channels": 16, "kernel": 5}):
        parent, rec = rec.saved, Recorder()
        config = suggest(space, 0, action)
        gen = space.train(config, rec.ctx(data, parent=parent, seed=1))
        assert len(rec.reports) == s["reports"]
        assert rec.attrs["arch"] == rec.saved[0]["arch"]
    assert gen.sample(5, seed=1).shape == (5, 1, 8, 8)
    assert rec.saved[0]["lineage_images"] == rec.attrs["lineage_images"] == 4 * images
    assert rec.attrs["full_resolution"] is True
    assert len(rec.attrs["arch"]["d"][-1]) == 3  # grow's two D layers + the d_layer below them
    assert len(rec.attrs["arch"]["g"][-1]) == 2  # grow's two G layers
    with pytest.raises(GenasError, match="resolution"):  # 8x8 is the dataset's: no more grow
        space.train(suggest(space, 0, {"action": "grow", "channels": 8, "kernel": 3}), rec.ctx(data, rec.saved))


def test_a_child_trains_with_the_ema_half_life_capped_at_a_tenth_of_its_images(monkeypatch):
    import genas.spaces.dggan.train as dggan_train

    half_lives, ema = [], dggan_train.EMA

    def recording_ema(G, half_life, **kw):  # noqa: ANN001, ANN202
        half_lives.append(half_life)
        return ema(G, half_life, **kw)

    monkeypatch.setattr(dggan_train, "EMA", recording_ema)
    space, data = get_space("dggan"), dataset(8)
    s = space.settings(space.resolve_options({}), "tiny", 8)
    space.train(suggest(space, None, {"action": "root", "channels": 8, "kernel": 3}), Recorder().ctx(data))
    assert s["ema_half_life"] > 0.1 * space.images_at(s, 0)  # so the cap is what sets it
    assert half_lives == [pytest.approx(0.1 * space.images_at(s, 0))]


def test_suggest_needs_the_growth_sampler():
    space = get_space("dggan")
    trial = optuna.create_study().ask()
    with pytest.raises(GenasError, match="--sampler growth"):
        space.suggest(trial, None)
    with pytest.raises(GenasError, match="root"):
        suggest(space, 3, {"action": "root", "channels": 8, "kernel": 3})


def test_divergence_raises_training_diverged():
    space, rec = get_space("dggan"), Recorder()
    config = {**suggest(space, None, {"action": "root", "channels": 8, "kernel": 3}), "lr": float("inf")}
    with pytest.raises(TrainingDiverged, match="diverged"):
        space.train(config, rec.ctx(dataset(8)))


def test_only_the_finishing_generation_cools_down():
    space = get_space("dggan")
    s = space.settings(space.resolve_options({"cooldown": "0.5"}), "small", 32)
    assert s["cooldown"] == 0.5 and space.settings(space.resolve_options({}), "small", 32)["cooldown"] == 0.0
    planned = s["generations"] + 1  # generations 0 .. generations; the finishing one comes next
    assert [space.finishes(s, g) for g in range(planned + 2)] == [False] * planned + [True, False]
    assert not space.finishes(space.settings(space.resolve_options({"finish": "0", "cooldown": "0.5"}), "small", 32),
                              s["generations"] + 1)
    with pytest.raises(GenasError, match="cooldown"):
        space.check(dataset(32), space.resolve_options({"cooldown": "1.5"}), budget="small")


def test_augment_target_reaches_every_candidates_recipe(monkeypatch):
    import genas.spaces.dggan.train as dggan_train

    space, data = get_space("dggan"), dataset(8)
    for bad, match in (({"augment": "translation", "augment_target": "1.5"}, "lie in"),
                       ({"augment_target": "0.6"}, "set augment too")):
        with pytest.raises(GenasError, match=match):
            space.check(data, space.resolve_options(bad), budget="tiny")
    recipes, train = [], dggan_train.train

    def recording_train(nets, recipe, *args, **kw):  # noqa: ANN001, ANN202
        recipes.append(recipe)
        return train(nets, recipe, *args, **kw)

    monkeypatch.setattr(dggan_train, "train", recording_train)
    options = space.resolve_options({"augment": "translation", "augment_target": "0.6"})
    space.check(data, options, budget="tiny")
    rec = Recorder()
    space.train(suggest(space, None, {"action": "root", "channels": 8, "kernel": 3}), rec.ctx(data, options=options))
    assert [(r.augment, r.augment_target) for r in recipes] == [("translation", 0.6)]
    assert "augment_p" in rec.reports[-1][1]
