"""san: module shapes, where gradients go, the shared-kernel averaging, ADO/RPA semantics, a tiny trial."""
from __future__ import annotations

import math

import optuna
import pytest
import torch

from genas.data import Dataset
from genas.errors import GenasError
from genas.spaces import TrialContext, generator_from_state, get_space
from genas.spaces.san.attention import AttentionDropout, ChannelAttention, RegionPixelAttention
from genas.spaces.san.generator import SANGenerator
from genas.spaces.san.losses import (diversity, latent_gradient_penalty, latent_wasserstein, paired_latent_mse,
                                     sliced_wasserstein)
from genas.spaces.san.networks import GNet, ResizeConv, RNet, init_shared, make_arch, modules_for, share_kernels
from genas.spaces.san.train import Hyper, Nets, losses, optimise, totals

NO_AUTOCAST = torch.autocast("cuda", enabled=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def arch(resolution: int = 16, **switches) -> dict:
    on = {"attention": True, "rpa": True, "rpa_ratio": 0.5, "ado": True, "ado_threshold": 0.1, **switches}
    return make_arch(resolution, 1, 16, 16, **on)


def test_modules_per_resolution_and_shapes():
    assert [modules_for(r) for r in (4, 8, 32, 128)] == [1, 2, 4, 6]  # six modules at 128x128
    with pytest.raises(GenasError):
        modules_for(24)
    a = arch(32)
    G, R = GNet(a), RNet(a)
    assert len(G.stages) == len(R.stages) == 4 and all(len(s.blocks) == 3 for s in G.stages)
    assert G(torch.randn(3, 16)).shape == (3, 1, 32, 32)
    assert R(torch.randn(3, 1, 32, 32)).shape == (3, 16)
    for i, (g_stage, r_stage) in enumerate(zip(G.stages, R.stages)):
        for j, (g, r) in enumerate(zip(g_stage.blocks, r_stage.blocks)):
            assert g.conv.weight.shape == r.conv.weight.shape
            if i > 0 and j == 0:  # each later module's first block doubles the resolution
                assert isinstance(g.conv, ResizeConv) and isinstance(r.conv, ResizeConv)
                continue
            assert isinstance(g.conv, torch.nn.ConvTranspose2d) and isinstance(r.conv, torch.nn.Conv2d)
            assert (g.conv.in_channels, g.conv.out_channels) == (r.conv.out_channels, r.conv.in_channels)


def test_resize_kernels_paint_no_checkerboard_and_r_mirrors_them_with_the_same_kernel():
    a = arch(8, attention=False, rpa=False, ado=False)
    assert a["upsample_kernel"] == "resize"

    def doubling_convs(arch_: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
        torch.manual_seed(0)
        G, R = GNet(arch_), RNet(arch_)
        init_shared(G, R)
        return G.stages[1].blocks[0].conv, R.stages[1].blocks[0].conv  # 4x4 -> 8x8 in G, 8x8 -> 4x4 in R

    g, r = doubling_convs(a)
    assert g.weight.shape[-2:] == (3, 3) and g.kernel().shape[-2:] == (4, 4)
    with torch.no_grad():
        flat = g(torch.ones(1, 16, 6, 6))[..., 2:-2, 2:-2]  # away from the zero padding
        # a free 4x4 kernel sums other taps in each of its four output phases: a 2-pixel checkerboard
        old_g, _ = doubling_convs({k: v for k, v in a.items() if k != "upsample_kernel"})
        assert isinstance(old_g, torch.nn.ConvTranspose2d) and old_g.weight.shape[-2:] == (4, 4)
        checkered = old_g(torch.ones(1, 16, 6, 6))[..., 2:-2, 2:-2]
    assert torch.allclose(flat, flat[..., :1, :1].expand_as(flat), atol=1e-5)
    assert not torch.allclose(checkered, checkered[..., :1, :1].expand_as(checkered), atol=1e-2)
    # R's conv is the adjoint of G's transposed conv: <G(x), y> = <x, R(y)> with the same kernel, no bias
    x, y = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        g.bias.zero_()
        r.bias.zero_()
        assert torch.equal(g.weight, r.weight)
        assert torch.allclose((g(x) * y).sum(), (x * r(y)).sum(), rtol=1e-4)
    with pytest.raises(GenasError, match="upsample_kernel"):
        GNet({**a, "upsample_kernel": "bilinear"})


def test_g_shortcut_is_bilinear_and_an_arch_saved_without_the_key_keeps_nearest():
    a = arch(8, attention=False, rpa=False, ado=False)
    assert a["shortcut"] == "bilinear"
    x = torch.randn(1, 16, 4, 4)

    def stream(arch_: dict) -> torch.Tensor:
        block = GNet(arch_).stages[1].blocks[0]  # 4x4 -> 8x8 at one width: the shortcut is the upsample alone
        with torch.no_grad():
            block.conv.weight.zero_()
            block.conv.bias.zero_()
            return block(x)

    assert torch.allclose(stream(a), torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear"))
    old = {k: v for k, v in a.items() if k != "shortcut"}
    assert torch.equal(stream(old), x.repeat_interleave(2, -1).repeat_interleave(2, -2))
    with pytest.raises(GenasError, match="shortcut"):
        GNet({**a, "shortcut": "bicubic"})


def test_module_switches_remove_the_modules():
    names = " ".join(n for n, _ in GNet(arch(8, attention=False, rpa=False, ado=False)).named_parameters())
    assert "attention" not in names and "rpa" not in names and "ado" not in names
    names = " ".join(n for n, _ in RNet(arch(8)).named_parameters())
    assert "attention" in names and "rpa" in names and "ado" in names


def test_rpa_multiplies_the_input_by_a_map_in_0_1():
    torch.manual_seed(0)
    rpa = RegionPixelAttention(8, 0.25)
    assert rpa.compress.out_channels == 2
    x = torch.randn(2, 8, 16, 16)
    m = rpa.attention(x)
    assert m.shape == x.shape and bool((m > 0).all()) and bool((m < 1).all())
    assert torch.allclose(rpa(x), x * m)
    assert m.std() > 0  # a real map, not a constant
    inner = rpa.compress(x)
    assert inner.shape[-1] == 8 and rpa.restore(inner).shape[-1] == 4  # H/2, then H/4


def test_ado_zeroes_exactly_the_units_under_the_threshold_and_its_convs_learn():
    torch.manual_seed(0)
    ado = AttentionDropout(4, threshold=0.5)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    a = ado.attention(x).detach()
    y = ado(x)
    under = a < 0.5
    assert 0 < int(under.sum()) < under.numel()  # the test sees both kinds of unit
    assert bool((y[under] == 0).all())
    assert torch.equal(y[~under], x[~under])
    y.square().sum().backward()
    assert ado.first.weight.grad is not None and ado.first.weight.grad.abs().sum() > 0  # straight-through


def test_channel_attention_gates_channels():
    att = ChannelAttention(8)
    x = torch.randn(2, 8, 4, 4)
    ratio = att(x) / x
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio))  # one gate per channel
    assert bool((ratio > 0).all()) and bool((ratio < 1).all())


def test_sliced_wasserstein_is_a_distance_between_batches():
    torch.manual_seed(0)
    z = torch.randn(256, 8)
    assert sliced_wasserstein(z, z[torch.randperm(256)]).item() == pytest.approx(0.0, abs=1e-10)
    assert sliced_wasserstein(z + 3, z).item() > 10 * sliced_wasserstein(torch.randn(256, 8), z).item()


def test_each_network_gets_exactly_its_own_losss_gradient():
    torch.manual_seed(0)
    nets = Nets(arch(8))
    real, z = torch.rand(8, 1, 8, 8) * 2 - 1, torch.randn(8, 16)
    hp = Hyper(lr=1.0, weight_decay=0.0, lam=0.5, mse_weight=0.7, batch_size=8, ema_half_life=100,
               reading="cooperative", latent_mse_weight=0.4)
    G, R = nets.G, nets.R

    torch.manual_seed(1)
    l = losses(G, R, real, z)  # G's loss alone: L_GD + w L_GI + w_z L_Z, differentiated w.r.t. G only
    g_grads = torch.autograd.grad(l["loss_gd"] + hp.mse_weight * l["loss_gi"] + 0.4 * l["loss_latent"],
                                  list(G.parameters()))
    torch.manual_seed(1)
    l = losses(G, R, real, z)  # R's loss alone: L_RZ + L_RX + w_z L_Z, differentiated w.r.t. R only
    r_grads = torch.autograd.grad(l["loss_rz"] + l["loss_rx"] + 0.4 * l["loss_latent"], list(R.parameters()))

    before_g = [p.detach().clone() for p in G.parameters()]
    before_r = [p.detach().clone() for p in R.parameters()]
    sgd_g, sgd_r = torch.optim.SGD(G.parameters(), lr=1.0), torch.optim.SGD(R.parameters(), lr=1.0)
    torch.manual_seed(1)
    optimise(nets, sgd_g, sgd_r, real, z, hp, NO_AUTOCAST)  # the training step: one backward, two steps
    for p, old, grad in zip(G.parameters(), before_g, g_grads):
        assert torch.allclose(old - p.detach(), grad, atol=1e-6, rtol=1e-4)
    for p, old, grad in zip(R.parameters(), before_r, r_grads):
        assert torch.allclose(old - p.detach(), grad, atol=1e-6, rtol=1e-4)
    # and the MSE term reaches G (it is not dropped on the way)
    torch.manual_seed(1)
    l = losses(G, R, real, z)
    gi = torch.autograd.grad(l["loss_gi"], G.to_image.weight)[0]
    assert gi.abs().sum() > 0


def grads(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if g is None else g
            for p, g in zip(params, torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True))]


def test_adversarial_step_g_descends_and_r_ascends_the_latent_wasserstein_with_gp_on_r():
    torch.manual_seed(0)
    nets = Nets(arch(8))
    G, R = nets.G, nets.R
    g_params, r_params = list(G.parameters()), list(R.parameters())
    real, z = torch.rand(8, 1, 8, 8) * 2 - 1, torch.randn(8, 16)
    hp = Hyper(lr=1.0, weight_decay=0.0, lam=0.5, mse_weight=0.3, batch_size=8, ema_half_life=100,
               reading="adversarial", latent_mse_weight=0.5, gp_weight=10.0)

    torch.manual_seed(1)
    l = losses(G, R, real, z, "adversarial")
    w_g, w_r = grads(l["loss_w"], g_params), grads(l["loss_w"], r_params)
    gp_g, gp_r = grads(l["loss_gp"], g_params), grads(l["loss_gp"], r_params)
    rest_g = grads(0.3 * l["loss_gi"] + 0.5 * l["loss_latent"], g_params)
    rest_r = grads(0.5 * l["loss_latent"], r_params)
    assert l["loss_w"].item() != 0 and l["loss_gp"].item() > 0
    assert all(g.abs().sum() == 0 for g in gp_g)  # the penalty is R's alone ...
    assert sum(g.abs().sum() for g in gp_r) > 0  # ... and a gradient flows into R's parameters from it
    assert sum(g.abs().sum() for g in w_g) > 0 and sum(g.abs().sum() for g in w_r) > 0
    # the two totals carry the fake term (W) with opposite signs
    loss_g, loss_r = totals(l, hp)
    assert torch.allclose(loss_g + loss_r, 10.0 * l["loss_gp"] + 0.3 * l["loss_gi"] + 2 * 0.5 * l["loss_latent"])

    before_g = [p.detach().clone() for p in g_params]
    before_r = [p.detach().clone() for p in r_params]
    sgd_g, sgd_r = torch.optim.SGD(g_params, lr=1.0), torch.optim.SGD(r_params, lr=1.0)
    torch.manual_seed(1)
    optimise(nets, sgd_g, sgd_r, real, z, hp, NO_AUTOCAST)
    for p, old, w, rest in zip(g_params, before_g, w_g, rest_g):  # G: down W
        assert torch.allclose(old - p.detach(), w + rest, atol=1e-6, rtol=1e-4)
    for p, old, w, gp, rest in zip(r_params, before_r, w_r, gp_r, rest_r):  # R: up W, down GP
        assert torch.allclose(old - p.detach(), -w + 10.0 * gp + rest, atol=1e-6, rtol=1e-4)


def test_latent_wasserstein_reads_the_latents_along_the_unit_diagonal():
    torch.manual_seed(0)
    z = torch.randn(256, 8)
    assert latent_wasserstein(z, z[torch.randperm(256)]).item() == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([2.0, 0, 0, 0, 0, 0, -1.0, 0])  # moves the reals' scores by sum(shift) / sqrt(8)
    assert latent_wasserstein(z + shift, z).item() == pytest.approx(1.0 / 8 ** 0.5, rel=1e-5)
    assert latent_wasserstein(z, z + shift).item() == pytest.approx(-1.0 / 8 ** 0.5, rel=1e-5)


class Linear(torch.nn.Module):
    """x [B, 1, 8, 8] -> x.flatten(1) @ matrix.T, or z -> image with the transpose."""

    def __init__(self, matrix: torch.Tensor, to_image: bool = False) -> None:
        super().__init__()
        self.matrix, self.to_image = torch.nn.Parameter(matrix), to_image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.to_image:
            return (x @ self.matrix).reshape(-1, 1, 8, 8)
        return x.flatten(1) @ self.matrix.T


def test_gradient_penalty_is_zero_for_a_1_lipschitz_critic_and_positive_otherwise():
    torch.manual_seed(0)
    q = torch.linalg.qr(torch.randn(64, 16)).Q.T  # [16, 64], orthonormal rows: |grad_x u.Qx| = |Q^T u| = |u| = 1
    real, fake = torch.rand(8, 1, 8, 8), torch.rand(8, 1, 8, 8)
    assert latent_gradient_penalty(Linear(q), real, fake).item() == pytest.approx(0.0, abs=1e-10)
    assert latent_gradient_penalty(Linear(2 * q), real, fake).item() == pytest.approx(1.0, rel=1e-5)


def test_paired_latent_mse_is_zero_when_r_inverts_g_exactly():
    torch.manual_seed(0)
    q = torch.linalg.qr(torch.randn(64, 16)).Q.T  # G(z) = z Q (as an 8x8 image), R(x) = Q x: R(G(z)) = z
    G, R = Linear(q, to_image=True), Linear(q)
    z, real = torch.randn(32, 16), torch.rand(32, 1, 8, 8)
    for reading in ("adversarial", "cooperative"):
        assert losses(G, R, real, z, reading)["loss_latent"].item() == pytest.approx(0.0, abs=1e-10)
    assert paired_latent_mse(R(G(z)), z[torch.randperm(32)]).item() > 0.5  # pairs matter: shuffled z is far
    off = Linear(q + 0.1 * torch.randn_like(q))
    assert losses(G, off, real, z, "cooperative")["loss_latent"].item() > 1e-3


def test_shared_kernels_are_the_lambda_average_of_the_two_post_step_copies():
    torch.manual_seed(0)
    nets = Nets(arch(8))
    pairs = nets.pairs
    assert len(pairs) == 6 and all(torch.equal(g, r) for g, r in pairs)  # one init for both copies
    hp = Hyper(lr=1e-2, weight_decay=1e-4, lam=0.3, mse_weight=0.1, batch_size=8, ema_half_life=100)
    opt_g = torch.optim.Adam(nets.G.parameters(), lr=hp.lr)
    opt_r = torch.optim.Adam(nets.R.parameters(), lr=hp.lr)
    optimise(nets, opt_g, opt_r, torch.rand(8, 1, 8, 8) * 2 - 1, torch.randn(8, 16), hp, NO_AUTOCAST)
    post = [(g.detach().clone(), r.detach().clone()) for g, r in pairs]
    assert all(not torch.equal(g, r) for g, r in post)  # each network took its own step
    share_kernels(pairs, hp.lam)
    for (g, r), (g_post, r_post) in zip(pairs, post):
        assert torch.equal(g, r)
        assert torch.allclose(g, hp.lam * g_post + (1 - hp.lam) * r_post, atol=1e-7, rtol=1e-6)
        assert g.data_ptr() != r.data_ptr()  # two copies: each has its own optimiser state


def tiny_context(reports: list, attrs: dict, saved: list, resolution: int = 8) -> TrialContext:
    data = Dataset("random", f"random{resolution}", torch.rand(64, 1, resolution, resolution) * 2 - 1)
    return TrialContext(dataset=data, budget="tiny", device=torch.device("cpu"), seed=0,
                        reporter=lambda s, m: reports.append((s, m)), attr_setter=attrs.__setitem__,
                        state_saver=lambda c, t: saved.append((c, t)),
                        quick_evaluator=lambda g: {"swd_quick": float(g.sample(16, seed=0).float().mean())})


@pytest.mark.parametrize("reading, mse_weight", [("adversarial", 0.0), ("cooperative", 1.0)])
def test_tiny_trial_trains_reports_and_round_trips(reading, mse_weight):
    space = get_space("san")
    study = optuna.create_study()
    study.enqueue_trial({"lr": 1e-3, "weight_decay": 1e-5, "lam": 0.5, "mse_weight": mse_weight,
                         "latent_mse_weight": 1.0, "gp_weight": 10.0, "width": 8, "latent": 16, "attention": True,
                         "rpa": True, "ado": True, "rpa_ratio": 0.5, "ado_threshold": 0.1})
    reports, attrs, saved = [], {}, []
    ctx = tiny_context(reports, attrs, saved, resolution=16)
    ctx.options = {"reading": reading}
    config = space.suggest(study.ask(), ctx)
    assert config["mse_weight"] == mse_weight and config["reading"] == reading
    assert config["gp_weight"] == (10.0 if reading == "adversarial" else 0.0)
    gen = space.train(config, ctx)
    assert len(reports) == space.budget("tiny")["reports"]
    assert all(math.isfinite(v) for _, m in reports for v in m.values())
    terms = {"adversarial": {"loss_w", "loss_gp"}, "cooperative": {"loss_gd", "loss_rx"}}[reading]
    assert terms | {"loss_gi", "loss_latent", "loss_g", "loss_r", "diversity", "swd_quick"} <= set(reports[-1][1])
    assert attrs["reading"] == reading
    assert attrs["arch"]["channels"] == [8, 8, 8] and attrs["shared_kernels"] == 9
    assert attrs["diversity"] == reports[-1][1]["diversity"] and attrs["diversity_real"] > 0
    # the saved training state: G's and R's copies of every shared kernel are identical
    config_saved, tensors = saved[0]
    assert config_saved["space"] == "san"
    shared = [k for k in tensors if k.startswith("G.stages.") and k.endswith(".conv.weight")]
    assert len(shared) == 9
    assert all(torch.equal(tensors[k], tensors["R" + k[1:]]) for k in shared)
    images = gen.sample(5, seed=3)
    assert images.shape == (5, 1, 16, 16) and images.dtype == torch.uint8
    state = gen.state()
    again = generator_from_state(*state)
    assert isinstance(again, SANGenerator) and torch.equal(again.sample(5, seed=3), images)
    assert not torch.equal(gen.sample(5, seed=4), images)


def test_from_state_rejects_a_mismatch():
    gen = SANGenerator(arch(8), GNet(arch(8)))
    config, tensors = gen.state()
    with pytest.raises(GenasError, match="not 'san'"):
        SANGenerator.from_state({**config, "space": "dggan"}, tensors)
    wider = {**config, "arch": {**config["arch"], "channels": [32, 32]}}
    with pytest.raises(GenasError, match="re-export"):
        SANGenerator.from_state(wider, tensors)
    with pytest.raises(GenasError, match="missing"):
        SANGenerator.from_state({"space": "san", "arch": {"latent": 4}}, tensors)


def test_diversity_is_zero_for_copies_of_one_image():
    one = torch.rand(1, 1, 8, 8).expand(16, 1, 8, 8)
    assert diversity(one) == 0.0
    assert diversity(torch.rand(16, 1, 8, 8)) > 0.1
