"""snn through the CLI: tiny TPE searches on one target image (own metric) and on digits (SWD), then sampling."""
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState
from PIL import Image

from genas.cli import cli


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def completed(genas_home: Path, study: str) -> list:
    s = optuna.load_study(study_name=study, storage=f"sqlite:///{genas_home / 'optuna.db'}")
    return s, [t for t in s.trials if t.state == TrialState.COMPLETE]


def test_snn_search_on_one_image_then_sample(genas_home):
    runner = CliRunner()
    result = runner.invoke(cli, ["search", "snn", "--budget", "tiny", "--trials", "2", "--dataset", "image:astronaut@16",
                                 "--study-name", "snn-a"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    study, done = completed(genas_home, "snn-a")
    assert study.metric_names == ["mse"] and len(done) == 2
    assert all(0 < t.value < 1 and "perceptual_mnv2rand" in t.user_attrs for t in done)
    assert "swd" not in done[0].user_attrs  # one target image: no SWD
    assert {"agents", "steps", "inertia", "c1", "c2", "heads", "perceptual_weight", "scales"} <= set(done[0].params)
    assert "registered genas-snn-a" in result.output
    result = runner.invoke(cli, ["sample", "models:/genas-snn-a@champion", "-n", "4", "-o", "x.png", "--seed", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert Image.open("x.png").size[0] >= 32


def test_snn_search_on_digits_by_swd(genas_home):
    result = CliRunner().invoke(cli, ["search", "snn", "--budget", "tiny", "--trials", "2", "--dataset", "digits",
                                      "--objective", "swd", "--study-name", "snn-d"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    study, done = completed(genas_home, "snn-d")
    assert study.metric_names == ["swd"] and len(done) == 2
    assert all({"swd", "mse", "perceptual_mnv2rand"} <= set(t.user_attrs) for t in done)
    assert "registered genas-snn-d" in result.output


def test_snn_search_rejects_a_bad_weights_file_before_starting(genas_home):
    result = CliRunner().invoke(cli, ["search", "snn", "--budget", "tiny", "--trials", "1", "--dataset", "digits",
                                      "--set", "perceptual_weights=/nonexistent/mnv2.pth"])
    assert result.exit_code == 2
    assert "perceptual_weights=/nonexistent/mnv2.pth cannot be read" in result.output
    assert "Traceback" not in result.output


def test_snn_search_rejects_an_unreadable_target_image(genas_home, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    result = CliRunner().invoke(cli, ["search", "snn", "--budget", "tiny", "--trials", "1",
                                      "--dataset", f"image:{tmp_path / 'broken.png'}"])
    assert result.exit_code == 2
    assert "cannot read target image" in result.output and "Traceback" not in result.output
