"""dggan: growth keeps the parent's function at alpha 0, weights are inherited, trials train and chain."""
from __future__ import annotations

import math

import optuna
import pytest
import torch
import torch.nn.functional as F

from genas.data import Dataset
from genas.errors import GenasError, TrainingDiverged
from genas.spaces import TrialContext, generator_from_state, get_space
from genas.spaces.dggan import DGGANGenerator
from genas.spaces.dggan.network import Nets, apply_action, finalize, inherit, resolution_of, root_arch


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


def test_next_actions_cover_all_kinds_and_respect_the_resolution():
    space = get_space("dggan")
    roots = space.root_actions(8, "tiny")
    assert {a["action"] for a in roots} == {"root"}
    for a in roots:
        assert a["channels"] in space.action_params["channels"] and a["kernel"] in space.action_params["kernel"]
    arch = root_arch(8, 1, 8, 3)
    assert {a["action"] for a in space.next_actions(arch, 8, "tiny")} == {"g_layer", "d_layer", "grow"}
    arch8, _ = apply_action(arch, GROW)
    kinds = {a["action"] for a in space.next_actions(arch8, 8, "tiny")}
    assert kinds == {"g_layer", "d_layer"}  # 8x8 is the dataset's resolution: no grow
    assert space.next_actions(arch8, 4, "tiny") and "grow" not in {a["action"] for a in space.next_actions(arch, 4, "tiny")}
    for a in space.next_actions(arch, 32, "small"):
        assert set(a) == {"action", "channels", "kernel"}
        assert all(a[k] in space.action_params[k] for k in a)


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

    def ctx(self, data: Dataset, parent=None, seed: int = 0, budget: str = "tiny") -> TrialContext:
        return TrialContext(dataset=data, budget=budget, device=torch.device("cpu"), seed=seed,
                            reporter=lambda s, m: self.reports.append((s, m)),
                            quick_evaluator=lambda g: {"swd_quick": float(g.sample(8, seed=0).float().mean())},
                            parent_loader=lambda: parent, state_saver=self.save,
                            attr_setter=self.attrs.__setitem__, progress=lambda d, t: self.ticks.append((d, t)))

    def save(self, config: dict, tensors: dict) -> None:
        self.saved = (config, tensors)


def suggest(space, parent, action: dict) -> dict:
    study = optuna.create_study()
    study.enqueue_trial({**action, "lr": 1e-3, "n_critic": 1, "gp_weight": 10.0})
    trial = study.ask()
    trial.set_user_attr("parent", parent)
    return space.suggest(trial, None)


def test_root_then_children_train_and_report():
    space, data = get_space("dggan"), dataset(8)
    budget = space.budget("tiny")
    rec = Recorder()
    config = suggest(space, None, {"action": "root", "channels": 8, "kernel": 3})
    assert config["parent"] is None and config["action"] == "root"
    gen = space.train(config, rec.ctx(data))
    assert len(rec.reports) == budget["reports"]
    assert rec.reports[-1][0] == budget["images_per_trial"]
    assert {"loss_d", "loss_g", "swd_quick"} <= set(rec.reports[-1][1])
    assert all(math.isfinite(v) for _, m in rec.reports for v in m.values())
    assert rec.ticks[-1] == (budget["images_per_trial"], budget["images_per_trial"])
    assert gen.sample(5, seed=1).shape == (5, 1, 4, 4)
    for action in ({"action": "grow", "channels": 16, "kernel": 5}, {"action": "d_layer", "channels": 8, "kernel": 1}):
        parent, rec = rec.saved, Recorder()
        config = suggest(space, 0, action)
        gen = space.train(config, rec.ctx(data, parent=parent, seed=1))
        assert len(rec.reports) == budget["reports"]
        assert rec.attrs["arch"] == rec.saved[0]["arch"]
    assert gen.sample(5, seed=1).shape == (5, 1, 8, 8)
    assert rec.saved[0]["depth"] == 3 and rec.saved[0]["lineage_images"] == 3 * budget["images_per_trial"]
    assert len(rec.attrs["arch"]["d"][-1]) == 2  # grow's D layer + the d_layer below it
    with pytest.raises(GenasError, match="resolution"):  # 8x8 is the dataset's: no more grow
        space.train(suggest(space, 0, {"action": "grow", "channels": 8, "kernel": 3}), rec.ctx(data, rec.saved))


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
