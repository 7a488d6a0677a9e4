"""dcgan: the textbook networks, the paper's configuration as trial 0, a tiny search end to end."""
import optuna
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import genas
from genas.cli import cli
from genas.errors import GenasError
from genas.spaces import get_space
from genas.spaces.dcgan.networks import Discriminator, Generator, make_arch
from genas.spaces.dcgan.space import PAPER

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("res", [8, 32, 64])
def test_networks_fit_the_resolution(res):
    arch = make_arch(res, 3, 100, 8)
    G, D = Generator(arch), Discriminator(arch)
    x = G(torch.randn(5, 100))
    assert x.shape == (5, 3, res, res) and x.abs().max() <= 1
    assert D(x).shape == (5, 1)
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(convs) == res.bit_length() - 2  # 4 layers a side at 32x32, as the paper's net without its top
    assert len([m for m in D.modules() if isinstance(m, nn.Conv2d)]) == len(convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == len(convs) - 2  # none on D's first layer
    with pytest.raises(GenasError, match="power-of-two"):
        make_arch(24, 1, 100, 8)


def test_tiny_search_runs_the_paper_configuration_first(genas_home):
    result = CliRunner().invoke(cli, ["search", "dcgan", "--budget", "tiny", "--trials", "2"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    study = optuna.load_study(study_name="dcgan-mnist5k", storage=f"sqlite:///{genas_home / 'optuna.db'}")
    first = study.trials[0]
    assert {k: first.params[k] for k in PAPER} == PAPER and first.params["width"] == 16
    assert all(t.user_attrs["lineage_images"] == get_space("dcgan").budget("tiny")["images_per_trial"]
               for t in study.trials if t.state.name == "COMPLETE")
    images = genas.load("models:/genas-dcgan-mnist5k@champion").sample(4, seed=0)
    assert images.shape == (4, 1, 32, 32) and images.dtype == torch.uint8


def test_images_option_sets_the_training_images(genas_home):
    result = CliRunner().invoke(cli, ["search", "dcgan", "--budget", "tiny", "--trials", "1", "--set", "images=256"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    study = optuna.load_study(study_name="dcgan-mnist5k", storage=f"sqlite:///{genas_home / 'optuna.db'}")
    assert study.trials[0].user_attrs["lineage_images"] == 256
    bad = CliRunner().invoke(cli, ["search", "dcgan", "--budget", "tiny", "--study-name", "x", "--set", "images=-1"])
    assert bad.exit_code == 2 and "images=-1" in bad.output
