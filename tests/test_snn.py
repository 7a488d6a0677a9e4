"""snn: the swarm moves toward its target inside [-1, 1], attention heads are distributions, the
perceptual distance behaves, sampling is deterministic and ranked, and a tiny trial trains."""
from __future__ import annotations

import math

import optuna
import pytest
import torch
from safetensors.torch import save_file

from genas.data import Dataset, load_dataset, to_uint8
from genas.errors import GenasError, TrainingDiverged
from genas.spaces import TrialContext, generator_from_state, get_space
from genas.spaces.snn.attention import multi_head_attention, pixel_weights
from genas.spaces.snn.generator import SNNGenerator
from genas.spaces.snn.perceptual import ARCH, Perceptual, feature_network, random_network
from genas.spaces.snn.swarm import Swarm, SwarmConfig


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return load_dataset("image:astronaut@16").images  # [1, 3, 16, 16]


def mse_to_targets(swarm: Swarm, images: torch.Tensor) -> float:
    return (images - swarm.targets_of_agents()).pow(2).mean().item()


def test_swarm_moves_toward_the_target_and_stays_in_range(astronaut):
    config = SwarmConfig(agents=16, steps=20, noise_scale=0.3, perceptual_weight=0.0)
    swarm = Swarm(config, astronaut, None, seed=0)
    start = mse_to_targets(swarm, swarm.position)
    seen = []
    swarm.run(lambda s: seen.append((s.position.min().item(), s.position.max().item())))
    assert len(seen) == config.steps
    assert all(lo >= -1 and hi <= 1 for lo, hi in seen)
    assert mse_to_targets(swarm, swarm.position) < 0.3 * start
    assert mse_to_targets(swarm, swarm.best[swarm.leaders()]) < 0.2 * start


def test_sub_swarms_each_follow_their_own_target():
    targets = torch.stack([torch.full((1, 8, 8), -0.8), torch.full((1, 8, 8), 0.8)])
    swarm = Swarm(SwarmConfig(agents=8, steps=40, noise_scale=0.2, perceptual_weight=0.0), targets, None, seed=1).run()
    assert swarm.leaders().tolist() != [] and sorted(swarm.assign[swarm.leaders()].tolist()) == [0, 1]
    means = [swarm.best[swarm.assign == k].mean().item() for k in (0, 1)]
    assert means[0] < -0.5 and means[1] > 0.5
    rank = swarm.ranking()
    assert sorted(swarm.assign[rank[:2]].tolist()) == [0, 1]  # the two leaders come first
    assert set(rank.tolist()) == set(range(8))


def test_attention_heads_each_sum_to_one_and_emphasise_close_pixels():
    target = torch.zeros(1, 3, 4, 4)
    positions = torch.rand(5, 3, 4, 4) * 2 - 1
    positions[:, :, 0, 0] = 0.0  # exactly on target
    attention = multi_head_attention(positions, target, heads=3)
    assert attention.shape == (5, 3, 4, 4)
    torch.testing.assert_close(attention.sum((-1, -2)), torch.ones(5, 3))
    assert bool((attention[:, :, 0, 0] >= attention.flatten(2).max(-1).values - 1e-7).all())
    assert not torch.allclose(attention[:, 0], attention[:, 2])  # heads differ (temperatures)
    weights = pixel_weights(attention)
    torch.testing.assert_close(weights.mean((-1, -2)), torch.ones(5, 1))


def test_perceptual_distance_is_zero_for_identical_images_and_grows_with_noise(astronaut):
    net = Perceptual.random(levels=3, resolution=32)
    target = net.features(astronaut)
    g = torch.Generator().manual_seed(0)
    noisy = [(astronaut + s * torch.randn(astronaut.shape, generator=g)).clamp(-1, 1) for s in (0.05, 0.2, 0.8)]
    d = [net.distance(astronaut, target).item()] + [net.distance(x, target).item() for x in noisy]
    assert d[0] == pytest.approx(0.0, abs=1e-6)
    assert d[0] < d[1] < d[2] < d[3]
    grey = astronaut.mean(1, keepdim=True)  # 1-channel images work too
    assert net.distance(grey, net.features(grey)).item() == pytest.approx(0.0, abs=1e-6)


def test_random_network_is_fixed_and_real_weights_load_from_a_file(tmp_path):
    a, b = random_network(2), random_network(2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    torch.manual_seed(123)  # a "real" checkpoint: a whole timm classifier, other weights than the fixed seed
    import timm

    full = timm.create_model(ARCH, pretrained=False)
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(tmp_path / "mnv2.safetensors"))
    real = Perceptual.from_file(tmp_path / "mnv2.safetensors", levels=2, resolution=32)
    assert real.metric == "perceptual_mnv2" and Perceptual.random(2, 32).metric == "perceptual_mnv2rand"
    torch.testing.assert_close(real.net.conv_stem.weight, full.conv_stem.weight)
    with pytest.raises(GenasError, match="perceptual_weights=.*cannot be read"):
        Perceptual.from_file(tmp_path / "missing.pth", levels=2, resolution=32)
    save_file({"conv1.weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(GenasError, match="is not mobilenetv2_100 weights") as err:
        Perceptual.from_file(tmp_path / "other.safetensors", levels=2, resolution=32)
    assert "\n" not in str(err.value)
    assert len(feature_network(2).blocks) < len(feature_network(5).blocks)  # cut after the last level


def test_sample_is_deterministic_ranked_and_round_trips(astronaut):
    config = SwarmConfig(agents=6, steps=5, perceptual_weight=0.1, scales=1)
    gen = SNNGenerator(config, astronaut, {"kind": "random", "resolution": 16})
    images = gen.sample(8, seed=3)  # 8 > 6 agents: two swarms
    assert images.shape == (8, 3, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(images, SNNGenerator(config, astronaut, {"kind": "random", "resolution": 16}).sample(8, seed=3))
    assert not torch.equal(images, gen.sample(8, seed=4))
    run = gen.run(3, 0)
    assert torch.equal(gen.sample(2, seed=3), to_uint8(run.ranked[:2]))  # 2 <= 6 agents: one swarm's best two
    assert bool((run.ranked_fitness[1:] >= run.ranked_fitness[:-1]).all())  # best first
    best = torch.cat([gen.run(3, 0).ranked_fitness, gen.run(3, 1).ranked_fitness]).sort().values[:2]
    fitness_of_first = torch.stack([gen.run(3, 0).ranked_fitness[0], gen.run(3, 1).ranked_fitness[0]]).sort().values
    torch.testing.assert_close(best, fitness_of_first)
    config_json, tensors = gen.state()
    again = generator_from_state(config_json, tensors)
    assert isinstance(again, SNNGenerator) and torch.equal(again.sample(8, seed=3), images)
    with pytest.raises(GenasError, match="does not match"):
        SNNGenerator.from_state(config_json, {"targets": torch.zeros(1, 1, 8, 8)})
    with pytest.raises(GenasError, match="not 'snn'"):
        SNNGenerator.from_state({**config_json, "space": "dggan"}, tensors)


def test_real_weights_travel_inside_the_state(tmp_path, astronaut):
    weights = Perceptual.random(1, 16).weights()
    weights = {k: v + 0.01 for k, v in weights.items()}
    gen = SNNGenerator(SwarmConfig(agents=4, steps=3, scales=1), astronaut, {"kind": "weights", "resolution": 16},
                       weights)
    config, tensors = gen.state()
    assert any(k.startswith("perceptual.") for k in tensors)
    assert torch.equal(generator_from_state(config, tensors).sample(4, seed=0), gen.sample(4, seed=0))
    with pytest.raises(GenasError, match="holds none"):
        generator_from_state(config, {"targets": tensors["targets"]})


def trial_context(data: Dataset, reports: list, options: dict | None = None) -> TrialContext:
    return TrialContext(dataset=data, budget="tiny", device=torch.device("cpu"), seed=0,
                        options=get_space("snn").resolve_options(options or {}),
                        reporter=lambda s, m: reports.append((s, m)), attr_setter=lambda k, v: None)


TINY = {"agents": 16, "steps": 12, "beta_start": 0.1, "beta_end": 0.002, "inertia": 0.7, "c1": 1.5, "c2": 1.5,
        "attention": True, "heads": 4, "noise_scale": 0.3, "perceptual": True, "perceptual_weight": 0.1, "scales": 1}


def test_tiny_trial_reports_and_scores_on_one_image(astronaut):
    space = get_space("snn")
    study = optuna.create_study()
    study.enqueue_trial(TINY)
    reports: list = []
    ctx = trial_context(Dataset("image:astronaut", "a16", astronaut), reports)
    gen = space.train(space.suggest(study.ask(), ctx), ctx)
    assert [s for s, _ in reports] == [12, 24]  # the budget's reference schedule (24 steps), halves of it
    assert all({"mse_quick", "perceptual_mnv2rand_quick"} <= set(m) for _, m in reports)
    assert "swd_quick" not in reports[0][1]
    scores = space.score(gen, ["mse", "perceptual_mnv2rand"], ctx)
    assert scores["mse"] == pytest.approx(reports[-1][1]["mse_quick"])
    assert 0 < scores["mse"] < 0.5 and math.isfinite(scores["perceptual_mnv2rand"])
    assert space.final_metrics(("mse",), ctx.dataset) == ["mse", "perceptual_mnv2rand"]
    assert gen.sample(4, seed=0).shape == (4, 3, 16, 16)


def test_dataset_trial_gives_each_target_a_sub_swarm_and_quick_swd():
    data = Dataset("digits", "digits-test", load_dataset("digits").images[:40])
    space, reports = get_space("snn"), []
    ctx = trial_context(data, reports)
    ctx.quick_evaluator = lambda g: {"swd_quick": float(g.sample(8, seed=0).float().mean())}
    gen = space.train({**TINY, "perceptual": False}, ctx)
    assert gen.targets.shape == (4, 1, 8, 8)  # 16 agents / 4 per target
    assert all("swd_quick" in m for _, m in reports)
    assert space.final_metrics(("swd",), data) == ["mse", "perceptual_mnv2rand", "swd"]
    assert gen.sample(4, seed=0).shape == (4, 1, 8, 8)


def test_options_and_checks_fail_in_one_line(tmp_path):
    space = get_space("snn")
    with pytest.raises(GenasError, match="no option"):
        space.resolve_options({"perceptual_weight": "x"})
    with pytest.raises(GenasError, match="perceptual_weights=.*cannot be read") as err:
        space.check(load_dataset("digits"), space.resolve_options({"perceptual_weights": str(tmp_path / "no.pth")}))
    assert "\n" not in str(err.value)
    with pytest.raises(GenasError, match="1- or 3-channel"):
        space.check(Dataset("x", "x", torch.zeros(2, 2, 8, 8)), space.resolve_options({}))
    with pytest.raises(GenasError, match="needs real MobileNetV2 weights: pass --set perceptual_weights=PATH"):
        space.check(load_dataset("digits"), space.resolve_options({}), budget="tiny", objectives=("perceptual_mnv2",))


def test_non_finite_fitness_stops_the_trial():
    images = torch.zeros(1, 1, 8, 8)
    images[0, 0, 0, 0] = float("nan")
    ctx = trial_context(Dataset("nan", "nan", images), [])
    with pytest.raises(TrainingDiverged, match="not finite"):
        get_space("snn").train({**TINY, "perceptual": False}, ctx)
