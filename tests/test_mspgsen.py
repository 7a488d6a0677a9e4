"""mspgsen: each module on its own (shapes, where gradients flow and where they must not), eq. 7's
sign, APFL's meta-learning loop and its monitor's decisions, the DQN balancer (its state, its
actions, a toy problem, the warm start), the source configuration as trial 0, and a tiny trial."""
from __future__ import annotations

import math
import random

import optuna
import pytest
import torch

from genas.data import Dataset
from genas.errors import GenasError
from genas.spaces import TrialContext, generator_from_state, get_space
from genas.spaces.mspgsen import balancer as balancer_mod
from genas.spaces.mspgsen import train as train_mod
from genas.spaces.mspgsen.balancer import STATE_DIM, DQNBalancer
from genas.spaces.mspgsen.blocks import DEMA, GCTDRN, GlobalEnhance, PlainBlock, contrastive_loss, module_contrast
from genas.spaces.mspgsen.feedback import APFL, batch_swd, lookahead_images
from genas.spaces.mspgsen.generator import MSPGSENGenerator
from genas.spaces.mspgsen.networks import AuxD, DNet, GNet, set_level
from genas.spaces.mspgsen.space import BALANCER_ATTR, BASE_KEYS, MODULES, build_arch, build_hyper
from genas.spaces.mspgsen.train import Hyper, Trainer

ALL_ON = {"lr_g": 1e-3, "lr_d": 1e-3, "width": 8, "latent": 16, "batch_size": 16, "n_critic": 1, "r1_gamma": 1.0,
          "dropout": 0.1, **{m: True for m in MODULES}, "kernels": "3-5-7", "heads": 3, "contrastive": True,
          "contrastive_weight": 0.1, "tau": 0.1, "lambda_aux": 0.1, "lambda_fm": 1.0, "apfl_meta": True,
          "apfl_inner_steps": 1, "apfl_gamma": 0.7, "apfl_patience": 2, "balance_decay_ema": True, "eps_start": 1.0,
          "eps_decay_frac": 0.5, "reward_mix": 0.5}
ALL_OFF = {**{k: ALL_ON[k] for k in ("lr_g", "lr_d", "width", "latent", "batch_size", "n_critic", "r1_gamma",
                                     "dropout")},
           **{m: False for m in MODULES}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def ctx_for(data: Dataset, **kw) -> TrialContext:
    return TrialContext(dataset=data, budget="tiny", device=torch.device("cpu"), seed=0, **kw)


def random_data(res: int = 16, n: int = 64) -> Dataset:
    return Dataset("random", f"random{res}", torch.rand(n, 1, res, res) * 2 - 1)


def tiny_trainer(config: dict, res: int = 16, **hyper) -> Trainer:
    arch = build_arch(config, res, 1)
    hp = Hyper(**{**vars(build_hyper({**config, "batch_size": 8}, get_space("mspgsen").budget("tiny"))), **hyper})
    return Trainer(arch, hp, ctx_for(random_data(res)), total_images=64)


# ------------------------------------------------------------------ blocks
def test_block_and_network_shapes():
    x = torch.randn(4, 8, 8, 8)
    assert DEMA(8, 12, heads=3, contrastive=False)(x).shape == (4, 12, 8, 8)
    assert GCTDRN(8, 12, (3, 5, 7), DEMA(8, 12, 2, False))(x).shape == (4, 12, 8, 8)
    assert PlainBlock(8, 12, DEMA(12, 12, 2, False))(x).shape == (4, 12, 8, 8)
    assert GlobalEnhance(8)(x).shape == x.shape
    arch = build_arch(ALL_ON, 16, 3)
    G, D, aux = GNet(arch), DNet(arch, 0.1), AuxD(arch)
    z = torch.randn(4, 16)
    for level, res in enumerate((4, 8, 16)):
        set_level(level, 0.5 if level else 1.0, G, D)
        img, feats = G(z, features=True)
        assert img.shape == (4, 3, res, res)
        assert feats.shape[-1] == 4 * 2 ** max(level - 1, 0)  # the intermediate level, below the top
        score, d_feats = D(img, features=True)
        assert score.shape == (4,) and len(d_feats) == level + 1
        assert aux(feats, G.feature_level).shape == (4,)


def test_dema_alpha_beta_are_computed_from_the_input():
    dema = DEMA(8, 8, heads=2, contrastive=False)
    torch.nn.init.normal_(dema.mix[-1].weight, std=1.0)
    x1, x2 = torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8) * 3 + 1
    a1, b1 = dema.weights(x1)
    a2, b2 = dema.weights(x2)
    assert a1.shape == (2, 8, 1, 1) and b1.shape == (2, 8, 1, 1)
    assert not torch.allclose(a1, a2) and not torch.allclose(b1, b2)
    assert bool(((a1 > 0) & (a1 < 2)).all())
    x = x1.clone().requires_grad_(True)
    alpha, beta = dema.weights(x)
    (grad,) = torch.autograd.grad((alpha.sum() + beta.sum()), x)
    assert grad.abs().sum() > 0  # alpha and beta respond to the features
    dema(x1).square().mean().backward()  # and the output trains the MLP that makes them, the task token too
    assert dema.mix[0].weight.grad.abs().sum() > 0 and dema.task.grad.abs().sum() > 0
    assert all(h.depthwise.weight.grad.abs().sum() > 0 for h in dema.heads)  # every head of the focus flow
    assert dema.context_score.weight.grad.abs().sum() > 0  # the implicit global embedding


def test_contrastive_views_only_when_on_and_training_with_gradients():
    x = torch.randn(6, 8, 4, 4)
    off = DEMA(8, 8, 2, contrastive=False)
    off(x)
    assert off.pair is None
    on = DEMA(8, 8, 2, contrastive=True)
    with torch.no_grad():
        on(x)
    assert on.pair is None  # D steps run G without gradients: nothing to contrast
    on.eval()(x)
    assert on.pair is None
    on.train()(x)
    assert len(on.pair) == 4 and all(v.shape == (6, 8) for v in on.pair)  # F_a, F_b, E_a, E_b
    loss = contrastive_loss(on, tau=0.1)
    assert on.pair is None and loss is not None and math.isfinite(float(loss.detach()))
    loss.backward()
    assert on.fuse.weight.grad.abs().sum() > 0 and on.value.weight.grad.abs().sum() > 0  # both flows


def test_eq7_penalises_redundant_focus_and_expansion_features():
    # the reading: each module's positive is its own second view, the other module's view the negative
    b, c = 8, 16
    focus = torch.randn(b, c)
    expand_apart = torch.randn(b, c)
    same = module_contrast(focus, focus, focus, focus, tau=0.1)  # F and E identical: redundant
    apart = module_contrast(focus, focus, expand_apart, expand_apart, tau=0.1)
    assert float(same) == pytest.approx(math.log(2), abs=1e-5)  # no better than a coin
    assert float(apart) < 0.5 * float(same)  # complementary features cost less: redundancy is penalised
    # and the gradient pushes identical F and E apart, it does not keep them together
    f = focus.clone().requires_grad_(True)
    e = (focus + 0.01 * torch.randn(b, c)).requires_grad_(True)
    module_contrast(f, f, e, e, tau=0.1).backward()
    with torch.no_grad():
        before = torch.nn.functional.cosine_similarity(f, e).mean()
        after = torch.nn.functional.cosine_similarity(f - 0.1 * f.grad, e - 0.1 * e.grad).mean()
    assert after < before


def test_gctdrn_gradients_reach_every_branch_the_attention_and_the_fusion():
    block = GCTDRN(8, 8, (3, 5, 7), DEMA(8, 8, 2, False))
    block(torch.randn(4, 8, 8, 8)).sum().backward()
    grads = [b.weight.grad for b in block.branches] + [block.select[0].weight.grad, block.a.grad, block.b.grad,
                                                        block.attention.fuse.weight.grad]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert isinstance(block.shortcut, torch.nn.Identity)


# ------------------------------------------------------------------ AFE / G and D steps
def test_afe_loss_reaches_g_intermediate_features_and_the_aux_step_leaves_g_alone():
    trainer = tiny_trainer({**ALL_OFF, "afe": True})
    G, aux = trainer.G, trainer.aux
    set_level(2, 1.0, G, trainer.D)
    _, feats = G(trainer.z(), features=True)
    torch.nn.functional.softplus(-aux(feats, G.feature_level)).mean().backward()
    assert G.blocks[G.feature_level].conv1.weight.grad.abs().sum() > 0  # eq. 20's term reaches G's features
    assert G.blocks[0].conv1.weight.grad.abs().sum() > 0
    assert G.to_rgb[2].weight.grad is None  # and nothing above the intermediate level
    G.zero_grad(set_to_none=True)
    g_before = [p.detach().clone() for p in G.parameters()]
    aux_before = [p.detach().clone() for p in aux.parameters()]
    trainer.aux_step()
    assert all(torch.equal(a, p) for a, p in zip(g_before, G.parameters()))
    assert all(p.grad is None for p in G.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(aux_before, aux.parameters()))


def test_g_step_changes_g_only_and_d_step_changes_d_only():
    trainer = tiny_trainer({**ALL_ON, "progressive": False})
    G, D, aux = trainer.G, trainer.D, trainer.aux
    snap = {n: [p.detach().clone() for p in net.parameters()] for n, net in (("G", G), ("D", D), ("aux", aux))}

    def changed(name, net):
        return any(not torch.equal(a, p) for a, p in zip(snap[name], net.parameters()))

    trainer.d_step(torch.rand(8, 1, 16, 16) * 2 - 1)
    assert changed("D", D) and not changed("G", G) and not changed("aux", aux)
    snap = {n: [p.detach().clone() for p in net.parameters()] for n, net in (("G", G), ("D", D), ("aux", aux))}
    trainer.g_step()
    assert changed("G", G) and not changed("D", D) and not changed("aux", aux)
    assert all(p.requires_grad for p in D.parameters())  # unfrozen again for the next D step
    # the EMA's half-life ramps up over a phase: at its start the EMA follows G, later it lags
    assert all(torch.equal(e, p) for e, p in zip(trainer.G_ema.parameters(), G.parameters()))
    trainer.phase_seen = 10_000
    trainer.g_step()
    assert all(not torch.equal(e, p) for e, p in zip(trainer.G_ema.parameters(), G.parameters()) if p.grad is not None
               and p.grad.abs().sum() > 0)


def test_switched_off_modules_are_neither_built_nor_computed(monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("a switched-off module was computed")

    monkeypatch.setattr(train_mod, "batch_swd", forbidden)
    monkeypatch.setattr(train_mod, "contrastive_loss", forbidden)
    monkeypatch.setattr(balancer_mod.DQNBalancer, "act", forbidden)
    monkeypatch.setattr(train_mod, "lookahead_images", forbidden)
    trainer = tiny_trainer(ALL_OFF)
    kinds = {type(m) for m in trainer.G.modules()}
    assert not kinds & {DEMA, GCTDRN, GlobalEnhance} and PlainBlock in kinds
    assert trainer.aux is None and trainer.apfl is None and trainer.dqn is None
    from genas.spaces.dggan.train import Progress
    reports = []
    trainer.train(random_data().images, 64, Progress(trainer.ctx, 64, 2), lambda s, m: reports.append(m))
    assert len(reports) == 2 and "swd_batch" not in reports[-1] and reports[-1]["level"] == 2.0


# ------------------------------------------------------------------ feedback modules
def test_batch_swd_is_zero_for_the_same_batch_and_grows_with_the_shift():
    x = torch.rand(16, 1, 32, 32)
    assert float(batch_swd(x, x)) == pytest.approx(0.0, abs=1e-5)
    assert 0 < float(batch_swd(x, x + 0.1)) < float(batch_swd(x, x + 0.5))


def test_apfl_weakens_a_too_strong_d_and_decays_rates_when_quality_stalls():
    apfl = APFL(gamma=0.5, patience=2)
    assert apfl.update(10.0, 0.75) == []  # improving, balanced: nothing to do
    assert apfl.update(8.0, 0.75) == []
    assert apfl.update(7.0, 0.97) == ["d_too_strong"]
    assert (apfl.lr_d, apfl.lr_g, apfl.fm_scale) == (0.5, 1.0, 1.5)
    assert apfl.update(6.0, 0.3) == ["d_too_weak"]  # D lost its edge: undo the step
    assert (apfl.lr_d, apfl.fm_scale) == (1.0, 1.0)
    assert apfl.update(6.0, 0.3) == []  # nothing left to undo; first stalled check
    assert apfl.update(5.99, 0.75) == ["stalled"]  # under min_delta twice: StepLR on both, more AFE
    assert (apfl.lr_g, apfl.lr_d, apfl.aux_scale) == (0.5, 0.5, 1.5)
    for _ in range(40):
        apfl.update(100.0, 0.99)
    assert apfl.lr_d == apfl.lr_floor and apfl.lr_g == apfl.lr_floor and apfl.fm_scale == apfl.weight_cap
    assert apfl.summary()["adjustments"]["stalled"] >= 10


def test_dqn_balancer_learns_the_right_action_on_a_toy_problem():
    # the right action is known: it is the index of the largest of the first three state entries
    rng = random.Random(0)

    def state():
        return [rng.uniform(-1, 1) for _ in range(4)]

    def right(s):
        return max(range(3), key=lambda i: s[i])

    agent = DQNBalancer(state_dim=4, branches=(3,), eps_start=1.0, eps_end=0.05, eps_decay=300, gamma=0.5,
                        lr=3e-3, batch=32, updates_per_decision=1, seed=0)
    s = state()
    for _ in range(800):
        (a,) = agent.act(s)
        s2 = state()
        agent.observe(s, (a,), 1.0 if a == right(s) else 0.0, s2)
        s = s2
    tests = [state() for _ in range(200)]
    accuracy = sum(agent.greedy(t) == (right(t),) for t in tests) / len(tests)
    assert accuracy > 0.85, accuracy
    assert agent.epsilon == pytest.approx(0.05) and agent.updates > 700
    assert sum(agent.summary()["actions"]["0"].values()) == 800


def test_balance_reward_mixes_d_judged_improvement_and_balance_gain():
    from genas.spaces.mspgsen.balancer import balance_reward, balance_state
    assert balance_reward(0.5, 0.5, 0.5, mix=1.0) == 0.5 and balance_reward(-0.5, 0.5, 0.5, mix=1.0) == -0.5
    assert balance_reward(0.0, 0.8, 0.2, mix=0.0) > 0 > balance_reward(0.0, 0.2, 0.8, mix=0.0)
    assert len(balance_state(0.6, 0.4, 0.5, 1.0, 0.0, 0.1, (0.0, 0.0), 0.5)) == STATE_DIM


class ScoreByMean(torch.nn.Module):
    """A stand-in D whose logit is ten times an image's mean pixel: its scores are known exactly."""

    def forward(self, x, features=False):
        return x.float().mean(dim=(1, 2, 3)) * 10


def test_balancer_state_holds_d_scores_and_the_probe_images_statistics():
    trainer = tiny_trainer({**ALL_OFF, "balance": True, "progressive": False})
    real = torch.rand(8, 1, 16, 16) * 2 - 1
    trainer.last_real = real
    trainer.D = ScoreByMean()
    stats = {"d_real": 0.7, "d_fake": 0.2}
    trainer.balance(stats, done=32)
    state = trainer.prev["state"]
    with torch.no_grad():
        fake = trainer.G_ema(trainer.probe_z)
    p_probe = float(torch.sigmoid(fake.mean(dim=(1, 2, 3)) * 10).mean())
    assert state[:4] == pytest.approx([0.7, 0.2, p_probe, 0.5])  # D on reals, on fakes, on the EMA G's probe
    assert state[4] == pytest.approx(min(float(fake.std(0).mean() / real.std(0).mean()), 2.0), rel=1e-5)
    assert state[5] == pytest.approx(float(fake.mean() - real.mean()), abs=1e-6)
    assert state[9] == pytest.approx(32 / 64)
    # the next decision's reward is D's verdict on the probe images now vs the last decision's
    with torch.no_grad():
        for p in trainer.G_ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
        now = trainer.G_ema(trainer.probe_z).mean(dim=(1, 2, 3)) * 10
        delta = float(now.mean() - (fake.mean(dim=(1, 2, 3)) * 10).mean())
    trainer.balance(stats, done=48)
    (transition,) = trainer.dqn.memory
    assert transition[2] == pytest.approx(math.tanh(delta / abs(delta)) * trainer.hp.reward_mix)  # equal gaps
    assert trainer.prev["state"][6] == pytest.approx(math.tanh(math.copysign(1.0, delta)))


@pytest.mark.parametrize("decay_ema", [True, False])
def test_balancer_actions_set_the_learning_rate_and_the_decay_rate(monkeypatch, decay_ema):
    trainer = tiny_trainer({**ALL_OFF, "balance": True, "balance_decay_ema": decay_ema, "progressive": False,
                            "eps_start": 0.0})
    trainer.last_real = torch.rand(8, 1, 16, 16)
    action = (2, 0) if decay_ema else (2, 2)
    monkeypatch.setattr(trainer.dqn, "greedy", lambda state: action)
    hp, rampup = trainer.hp, trainer.ema.rampup
    for _ in range(2):  # levels, not steps: the same action twice sets the same lr and EMA
        trainer.balance({"d_real": 0.6, "d_fake": 0.4}, done=8)
        trainer.apply_rates()
        if decay_ema:  # high lr level, low EMA level: x2 rates, a quarter of the half-life and of its ramp-up
            assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(hp.lr_g * 2)
            assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(hp.lr_d * 2)
            assert trainer.ema.half_life == pytest.approx(hp.ema_half_life * 0.25)
            assert trainer.ema.rampup == pytest.approx(rampup * 0.25)
    if not decay_ema:  # high decay level: each decision's StepLR factor is 8 ** (-1 / decisions)
        assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(hp.lr_g * 2 * 8 ** (-2 / trainer.knobs.decisions))
        assert trainer.ema.half_life == hp.ema_half_life
    names = ("low", "mid", "high")
    assert trainer.dqn.histogram() == {"lr": {n: 2 * (n == "high") for n in names},
                                       "decay": {n: 2 * (n == names[action[1]]) for n in names}}


def test_untrained_balancer_holds_the_knobs():
    agent = DQNBalancer(seed=3)
    assert {agent.greedy([random.uniform(-1, 1) for _ in range(STATE_DIM)]) for _ in range(50)} == {(1, 1)}


def test_balancer_warm_starts_from_the_best_complete_trial():
    space = get_space("mspgsen")
    study = optuna.create_study()
    trained = {}
    for value, seed in ((3.0, 1), (2.0, 2), (5.0, 3)):  # the champion is the trial with value 2.0
        trial = study.ask()
        agent = DQNBalancer(seed=seed)
        for _ in range(20):
            s = [random.uniform(-1, 1) for _ in range(STATE_DIM)]
            agent.observe(s, agent.act(s), random.uniform(-1, 1), s)
        trial.set_user_attr(BALANCER_ATTR, agent.payload())
        study.tell(trial, value)
        trained[trial.number] = agent
    study.enqueue_trial({**ALL_OFF, "balance": True, "balance_decay_ema": True, "eps_start": 0.5,
                         "eps_decay_frac": 0.5, "reward_mix": 1.0, "progressive": False})
    trial = study.ask()
    ctx = ctx_for(random_data(), trial=trial)
    space.train(space.suggest(trial, ctx), ctx)
    summary = trial.user_attrs["balancer"]
    assert summary["warm_from"] == 1
    champion = trained[1]
    fresh = DQNBalancer(seed=0)
    assert fresh.load_payload(champion.payload(), 1)
    assert all(torch.equal(a, b) for a, b in zip(fresh.q.parameters(), champion.q.parameters()))
    assert len(fresh.memory) == 20 and fresh.memory[-1][1] == champion.memory[-1][1]
    assert sum(summary["actions"]["lr"].values()) == summary["decisions"] > 0
    assert BALANCER_ATTR in trial.user_attrs  # and it hands its own on
    assert not DQNBalancer(state_dim=4).load_payload(champion.payload())  # a different network is refused


# ------------------------------------------------------------------ APFL's meta-learning loop
def test_apfl_meta_runs_g_inner_steps_then_d_outer_steps():
    trainer = tiny_trainer({**ALL_OFF, "apfl": True, "apfl_meta": True, "progressive": False}, apfl_inner_steps=2,
                           n_critic=1)
    trainer.order = []
    real = torch.rand(8, 1, 16, 16) * 2 - 1
    for _ in range(2):
        trainer.iteration(lambda: real)
    assert trainer.order == ["G", "G", "D*", "G", "G", "D*"]
    plain = tiny_trainer({**ALL_OFF, "apfl": True, "apfl_meta": False, "progressive": False}, n_critic=2)
    plain.order = []
    plain.iteration(lambda: real)
    assert plain.order == ["D", "D", "G"]


def test_apfl_outer_step_gives_d_the_meta_gradient_through_g_s_inner_step():
    trainer = tiny_trainer({**ALL_OFF, "progressive": False})
    G, D = trainer.G, trainer.D
    trainer.g_step()  # G's optimiser has second moments now
    G.zero_grad(set_to_none=True)
    z1, z2, real = torch.randn(8, 16), torch.randn(8, 16), torch.rand(8, 1, 16, 16) * 2 - 1

    def d_grad(lr: float) -> list[torch.Tensor]:
        trainer.opt_g.param_groups[0]["lr"] = lr
        fake = lookahead_images(G, D, trainer.opt_g, z1, z2)
        loss = torch.nn.functional.softplus(D(fake)).mean() + torch.nn.functional.softplus(-D(real)).mean()
        return torch.autograd.grad(loss, list(D.parameters()), allow_unused=True)

    before = [p.detach().clone() for p in G.parameters()]
    D.eval()  # no dropout: the comparisons below are exact
    with_step, without = d_grad(1e-2), d_grad(0.0)
    with torch.no_grad():
        plain_fake = G(z2)
    plain_loss = torch.nn.functional.softplus(D(plain_fake)).mean() + torch.nn.functional.softplus(-D(real)).mean()
    plain = torch.autograd.grad(plain_loss, list(D.parameters()), allow_unused=True)
    used = [i for i, g in enumerate(plain) if g is not None]  # D's layers of the current level
    assert used and all(without[i] is not None and with_step[i] is not None for i in used)
    assert all(torch.allclose(without[i], plain[i], atol=1e-6) for i in used)  # no inner step: D's usual gradient
    assert any(not torch.allclose(with_step[i], plain[i], atol=1e-6) for i in used)  # else G's answer counts
    assert all(torch.equal(a, p) for a, p in zip(before, G.parameters()))  # and G itself is not moved
    assert all(p.grad is None for p in G.parameters())


# ------------------------------------------------------------------ the space
def test_suggest_asks_a_module_knobs_only_when_it_is_on():
    space = get_space("mspgsen")
    ctx = ctx_for(random_data())
    study = optuna.create_study()
    study.enqueue_trial(ALL_OFF)
    study.enqueue_trial(ALL_ON)
    off, on = space.suggest(study.ask(), ctx), space.suggest(study.ask(), ctx)
    assert set(MODULES) <= set(off) and not {"lambda_aux", "heads", "kernels", "tau", "reward_mix", "apfl_meta",
                                             "balance_decay_ema"} & set(off)
    assert {"lambda_aux", "lambda_fm", "heads", "kernels", "tau", "contrastive_weight", "apfl_meta", "apfl_inner_steps",
            "apfl_gamma", "balance_decay_ema", "eps_start", "reward_mix"} <= set(on)


def test_trial_0_is_the_source_configuration_with_every_param_named_and_trial_1_has_every_module_off():
    space = get_space("mspgsen")
    for budget in ("tiny", "small", "full"):
        source, base = space.initial_trials(budget)
        assert all(source[m] is True for m in MODULES)
        # trial 1 is the baseline of the ablation: the same network and settings, every module off
        assert all(base[m] is False for m in MODULES)
        assert {k: v for k, v in base.items() if k not in MODULES} == {k: source[k] for k in BASE_KEYS}
        assert source["kernels"] == "3-5-7" and source["batch_size"] == 16 and source["dropout"] == 0.1
        assert source["contrastive"] and source["apfl_meta"] and source["balance_decay_ema"]
        study = optuna.create_study()
        study.enqueue_trial(source)
        trial = study.ask()
        ctx = TrialContext(dataset=random_data(), budget=budget, device=torch.device("cpu"), seed=0)
        config = space.suggest(trial, ctx)
        assert trial.params == source  # nothing left to the sampler: every switch and knob named, none extra
        hp = build_hyper(config, space.budget(budget))
        assert hp.apfl_meta and hp.balance and hp.balance_decay_ema and hp.afe and hp.feature_matching
        assert build_arch(config, 32, 1)["kernels"] == [3, 5, 7]
        study.enqueue_trial(base)
        trial = study.ask()
        config = space.suggest(trial, ctx)
        assert trial.params == base  # no knob of a module that is off is asked for
        hp = build_hyper(config, space.budget(budget))
        assert not (hp.apfl or hp.balance or hp.afe or hp.feature_matching or hp.progressive)


def test_tiny_trial_records_its_modules_and_samples_from_the_ema_g_at_the_dataset_resolution():
    space = get_space("mspgsen")
    study = optuna.create_study()
    study.enqueue_trial({**ALL_ON, "apfl_meta": False})  # the meta loop runs in the CLI test's trial 0
    reports, attrs = [], {}
    ctx = ctx_for(random_data(), reporter=lambda s, m: reports.append((s, m)), attr_setter=attrs.__setitem__)
    gen = space.train(space.suggest(study.ask(), ctx), ctx)
    assert len(reports) == space.budget("tiny")["reports"]
    assert all(math.isfinite(v) for _, m in reports for v in m.values())
    assert attrs["modules"] == {**{m: True for m in MODULES}, "contrastive": True, "apfl_meta": False,
                                "balance_decay_ema": True}
    decisions = attrs["balancer"]["decisions"]
    assert decisions > 0 and all(sum(h.values()) == decisions for h in attrs["balancer"]["actions"].values())
    last = reports[-1][1]  # the action histogram is in the metrics too, as fractions
    assert sum(v for k, v in last.items() if k.startswith("balancer_lr_")) == pytest.approx(1.0)
    assert set(attrs["apfl"]) >= {"adjustments", "lr_g", "lr_d", "meta"} and attrs["apfl"]["meta"] is False
    images = gen.sample(5, seed=3)
    assert images.shape == (5, 1, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(gen.sample(5, seed=3), images) and not torch.equal(gen.sample(5, seed=4), images)
    config, tensors = gen.state()
    assert config["space"] == "mspgsen" and all(isinstance(t, torch.Tensor) for t in tensors.values())
    again = generator_from_state(config, tensors)
    assert isinstance(again, MSPGSENGenerator) and torch.equal(again.sample(5, seed=3), images)
    with pytest.raises(GenasError, match="re-export"):
        MSPGSENGenerator.from_state(config, {k: v for k, v in list(tensors.items())[1:]})
    with pytest.raises(GenasError, match="not 'mspgsen'"):
        MSPGSENGenerator.from_state({**config, "space": "dggan"}, tensors)


def test_a_non_power_of_two_dataset_is_refused_with_advice():
    space = get_space("mspgsen")
    study = optuna.create_study()
    study.enqueue_trial(ALL_OFF)
    data = Dataset("odd", "odd12", torch.zeros(8, 1, 12, 12))
    ctx = ctx_for(data)
    with pytest.raises(GenasError, match="power-of-two"):
        space.train(space.suggest(study.ask(), ctx), ctx)
