"""san through the CLI: a tiny TPE search on the 8x8 digits registers a champion that samples."""
import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from genas.cli import cli


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_san_search_registers_a_champion_that_samples(genas_home):
    runner = CliRunner()
    result = runner.invoke(cli, ["search", "san", "--budget", "tiny", "--trials", "2", "--dataset", "digits",
                                 "--study-name", "san-tiny"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    study = optuna.load_study(study_name="san-tiny", storage=f"sqlite:///{genas_home / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2
    assert all(t.user_attrs["arch"]["channels"] and t.user_attrs["diversity"] >= 0 for t in complete)
    assert {"lr", "lam", "mse_weight", "attention", "rpa", "ado"} <= set(complete[0].params)
    assert "registered genas-san-tiny" in result.output
    out = genas_home.parent / "x.png"
    sampled = runner.invoke(cli, ["sample", "models:/genas-san-tiny@champion", "-n", "4", "-o", str(out),
                                  "--seed", "1"])
    assert sampled.exit_code == 0, sampled.output + repr(sampled.exception)
    assert out.stat().st_size > 0
