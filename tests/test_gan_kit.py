"""The shared GAN kit: losses against hand-computed values, the EMA, the augmentation, the loop."""
import math

import pytest
import torch
from torch import nn

from genas.data import Dataset
from genas.errors import GenasError
from genas.spaces import TrialContext
from genas.spaces.gan import EMA, AdaptiveProbability, DiffAugment, Fade, GANLoss, Recipe, train_gan
from genas.spaces.gan.ema import half_life_within
from genas.spaces.gan.losses import d_loss, g_loss, gradient_penalty, r1_penalty
from genas.spaces.progress import Progress

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REAL, FAKE = torch.tensor([0.0, 2.0]), torch.tensor([1.0, -1.0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_losses_match_their_formulas():
    assert d_loss("logistic", REAL, FAKE).item() == pytest.approx(
        (softplus(1) + softplus(-1)) / 2 + (softplus(-0.0) + softplus(-2)) / 2)
    assert g_loss("logistic", FAKE).item() == pytest.approx((softplus(-1) + softplus(1)) / 2)
    assert d_loss("hinge", REAL, FAKE).item() == pytest.approx((1 + 0) / 2 + (2 + 0) / 2)
    assert g_loss("hinge", FAKE).item() == pytest.approx(0.0)
    assert d_loss("wgan-gp", REAL, FAKE).item() == pytest.approx(0.0 - 1.0)
    assert g_loss("wgan-gp", torch.tensor([3.0, 1.0])).item() == pytest.approx(-2.0)
    with pytest.raises(GenasError, match="logistic, hinge, wgan-gp"):
        GANLoss(kind="lsgan")


class Linear(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) * self.w).sum(1, keepdim=True)


def test_regularisers_match_their_formulas():
    w = torch.tensor([3.0, 0.0, 4.0, 0.0])  # |w| = 5
    D = Linear(w)
    real = torch.randn(6, 1, 2, 2, requires_grad=True)
    assert r1_penalty(D(real), real).item() == pytest.approx(25.0)
    assert gradient_penalty(D, real, torch.randn(6, 1, 2, 2)).item() == pytest.approx((5 - 1) ** 2)
    fake = torch.randn(6, 1, 2, 2)
    loss = GANLoss("logistic", r1_gamma=0.5, r1_every=4)
    d0, dr, df = loss.discriminator(D, real, fake, step=0)  # an R1 step: + gamma/2 * every * |w|^2
    d1, _, _ = loss.discriminator(D, real, fake, step=1)  # not one
    assert d1.item() == pytest.approx(d_loss("logistic", D(real), D(fake)).item(), rel=1e-6)
    assert d0.item() - d1.item() == pytest.approx(0.5 * 0.5 * 4 * 25.0, rel=1e-5)
    wgan = GANLoss("wgan-gp", gp_weight=2.0, drift=0.0)
    total, dr, df = wgan.discriminator(D, real, fake, step=0)
    assert total.item() == pytest.approx(df.mean().item() - dr.mean().item() + 2.0 * 16.0, rel=1e-5)


def test_ema_half_life_is_in_images_and_ramps_up():
    src, dst = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        src.weight.fill_(1.0)
        dst.weight.fill_(0.0)
    ema = EMA(src, half_life=64, target=dst)
    for _ in range(4):  # 4 steps of 16 images = one half-life
        ema.update(16)
    assert dst.weight.item() == pytest.approx(0.5)
    ramped = EMA(src, half_life=10_000, rampup=0.5)
    with torch.no_grad():
        ramped.model.weight.fill_(0.0)
    ramped.update(16, images=32)  # half-life min(10000, 0.5 * 32) = 16 images: one half-life
    assert ramped.model.weight.item() == pytest.approx(0.5)
    off = EMA(src, half_life=0)
    assert off.model is src and not off.enabled


def test_the_half_life_within_a_span_is_at_most_a_tenth_of_it():
    assert half_life_within(5_000, 2_000) == 500  # a progan phase at small, 32x32
    assert half_life_within(10_320, 2_000) == pytest.approx(1_032)  # dggan's last generation at small
    assert half_life_within(1_500_000, 10_000) == 10_000  # full: the budget's half-life


def test_ema_copies_batch_norm_statistics():
    src = nn.BatchNorm2d(2)
    ema = EMA(src, half_life=1e9)
    src(torch.randn(8, 2, 3, 3) + 5)
    ema.update(8)
    assert torch.equal(ema.model.running_mean, src.running_mean)


def test_augmentation_is_differentiable_and_per_image():
    torch.manual_seed(0)
    x = torch.zeros(64, 3, 16, 16)
    x[:, :, 8, 8] = 1.0
    moved = DiffAugment("translation")(x)
    ys, xs = (moved[:, 0] == 1).nonzero()[:, 1], (moved[:, 0] == 1).nonzero()[:, 2]
    assert moved.shape == x.shape and ys.sub(8).abs().max() <= 2 and xs.sub(8).abs().max() <= 2
    assert len(set(zip(ys.tolist(), xs.tolist()))) > 5  # each image its own shift
    cut = DiffAugment("cutout")(torch.ones(16, 1, 16, 16))
    assert ((cut == 0).flatten(1).sum(1) == 64).all()  # one 8x8 hole per image
    leaf = torch.rand(4, 3, 8, 8, requires_grad=True)
    DiffAugment("color,translation,cutout")(leaf).sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0
    assert torch.equal(DiffAugment("")(leaf), leaf)
    with pytest.raises(GenasError, match="unknown augmentation"):
        DiffAugment("flip")


def test_augmentation_probability_picks_whole_images():
    torch.manual_seed(0)
    ones = torch.ones(400, 1, 16, 16)
    holes = lambda p: ((DiffAugment("cutout", p=p)(ones) == 0).flatten(1).sum(1) == 64)  # noqa: E731
    assert holes(1.0).all() and not holes(0.0).any()
    assert 0.2 < holes(0.3).float().mean() < 0.4  # 120 expected of 400; the rest untouched
    assert ((DiffAugment("cutout", p=0.3)(ones) == 0).flatten(1).sum(1) % 64 == 0).all()


def test_adaptive_probability_follows_ds_confidence_on_real_images():
    augment = DiffAugment("translation")
    ada = AdaptiveProbability(augment, target=0.6, speed_images=320, interval=4)
    assert augment.p == 0.0  # ADA starts unaugmented
    sure, unsure = torch.full((8,), 2.0), torch.tensor([1.0] * 5 + [-1.0] * 3)  # r = 1 and r = 0.25
    for _ in range(3):
        ada.update(sure)
    assert augment.p == 0.0  # moves only every 4 D steps
    ada.update(sure)
    assert augment.p == pytest.approx(32 / 320)  # 4 steps of 8 images, 320 images from 0 to 1
    for _ in range(4 * 20):
        ada.update(sure)
    assert augment.p == 1.0
    for _ in range(4 * 3):
        ada.update(unsure)
    assert augment.p == pytest.approx(1 - 3 * 32 / 320)
    with pytest.raises(GenasError, match="0.6"):
        AdaptiveProbability(augment, target=1.0, speed_images=320)


class TinyG(nn.Module):
    latent = 4

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh())
        self.alpha = 1.0

    def forward(self, z):
        return self.net(z).view(-1, 1, 4, 4)


def test_the_loop_trains_reports_fades_and_averages():
    torch.manual_seed(0)
    data = Dataset("toy", "toy", torch.rand(64, 1, 4, 4) * 2 - 1)
    reports, ticks, alphas = [], [], []
    ctx = TrialContext(dataset=data, budget="tiny", device=torch.device("cpu"), seed=0,
                       reporter=lambda s, m: reports.append((s, m)), quick_evaluator=lambda g: {"swd_quick": 1.0},
                       progress=lambda d, t: ticks.append(d))
    G, D = TinyG(), nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    before = [p.detach().clone() for p in G.parameters()]
    ema = EMA(G, half_life=32)
    recipe = Recipe(loss=GANLoss("logistic", r1_gamma=1.0), lr_g=1e-2, lr_d=1e-2, batch_size=8, augment="cutout")
    train_gan(G, D, ema, data.images, recipe, 128, ctx, Progress(ctx, 128, 4), snapshot=lambda: None,
              fade=Fade(64, alphas.append, blend_real=False))
    assert [s for s, _ in reports] == [32, 64, 96, 128] and ticks[-1] == 128
    assert {"loss_d", "loss_g", "d_real", "d_fake", "alpha", "swd_quick"} <= set(reports[0][1])
    assert alphas[0] == 0.0 and alphas[-1] == 1.0 and reports[1][1]["alpha"] < 1.0 <= reports[-1][1]["alpha"]
    assert all(not torch.equal(a, b) for a, b in zip(before, G.parameters()))  # G trained
    averaged = list(ema.model.parameters())
    assert all(not torch.equal(a, b) and not torch.equal(a, c) for a, b, c in zip(averaged, G.parameters(), before))
    assert all(p.requires_grad for p in D.parameters())  # D is unfrozen after G's step


def test_the_loop_adapts_the_augmentation_probability_and_reports_it():
    torch.manual_seed(0)
    data = Dataset("toy", "toy", torch.rand(64, 1, 4, 4) * 2 - 1)
    reports = []
    ctx = TrialContext(dataset=data, budget="tiny", device=torch.device("cpu"), seed=0,
                       reporter=lambda s, m: reports.append(m))
    G, D = TinyG(), nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    with torch.no_grad():  # D sure of every real image from the start (r = 1 > 0.6): p must rise
        D[1].weight.zero_()
        D[1].bias.fill_(5.0)
    recipe = Recipe(lr_g=1e-4, lr_d=1e-4, batch_size=8, augment="translation", augment_target=0.6, augment_speed=256)
    train_gan(G, D, EMA(G, half_life=32), data.images, recipe, 128, ctx, Progress(ctx, 128, 2), snapshot=lambda: None)
    assert [m["augment_p"] for m in reports] == [pytest.approx(0.25), pytest.approx(0.5)]  # 64 and 128 images of 256


def test_cooldown_takes_both_learning_rates_linearly_to_zero(monkeypatch):
    from genas.spaces.gan import loop

    assert [loop.cooldown_scale(seen, 100, 0.5) for seen in (0, 50, 75, 100)] == [1.0, 1.0, 0.5, 0.0]
    assert loop.cooldown_scale(30, 100, 1.0) == pytest.approx(0.7) and loop.cooldown_scale(99, 100, 0.0) == 1.0
    rates = []
    monkeypatch.setattr(loop, "set_lr", lambda opt, lr: rates.append(lr))
    torch.manual_seed(0)
    data = Dataset("toy", "toy", torch.rand(64, 1, 4, 4) * 2 - 1)
    ctx = TrialContext(dataset=data, budget="tiny", device=torch.device("cpu"), seed=0)
    G, D = TinyG(), nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    recipe = Recipe(lr_g=1e-2, lr_d=2e-2, batch_size=8, cooldown=0.5)
    train_gan(G, D, EMA(G, half_life=0), data.images, recipe, 128, ctx, Progress(ctx, 128, 1), snapshot=lambda: None)
    d_rates, g_rates = rates[0::2], rates[1::2]  # D's, then G's, before every iteration
    assert len(g_rates) == 128 // 8 and g_rates[:9] == [1e-2] * 9  # constant over the first half
    assert g_rates[-1] == pytest.approx(1e-2 * 8 / 64) and d_rates[-1] == pytest.approx(2e-2 * 8 / 64)
    assert all(a > b for a, b in zip(g_rates[8:], g_rates[9:]))  # then falling at every step
