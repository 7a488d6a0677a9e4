"""san through the CLI: a tiny TPE search on the 8x8 digits (trial 0 the source's configuration)
registers a champion that samples; a bad reading is refused in one line."""
import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from genas.cli import cli
from genas.spaces.san.space import SOURCE


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
    assert {"lr", "lam", "mse_weight", "latent_mse_weight", "gp_weight", "attention", "rpa", "ado"} <= set(
        complete[0].params)
    # trial 0 is the source's configuration: every module on, its losses at weight 1, the adversarial reading
    first = min(study.trials, key=lambda t: t.number)
    assert first.user_attrs.get("initial") is True and first.user_attrs["reading"] == "adversarial"
    assert {k: first.params[k] for k in SOURCE} == SOURCE
    assert first.params["attention"] and first.params["rpa"] and first.params["ado"]
    assert first.params["mse_weight"] == first.params["latent_mse_weight"] == 1.0
    assert first.params["gp_weight"] == 10.0 and first.params["lam"] == 0.5
    assert "registered genas-san-tiny" in result.output
    out = genas_home.parent / "x.png"
    sampled = runner.invoke(cli, ["sample", "models:/genas-san-tiny@champion", "-n", "4", "-o", str(out),
                                  "--seed", "1"])
    assert sampled.exit_code == 0, sampled.output + repr(sampled.exception)
    assert out.stat().st_size > 0


def test_an_unknown_reading_is_refused_in_one_line(genas_home):
    result = CliRunner().invoke(cli, ["search", "san", "--budget", "tiny", "--trials", "1", "--dataset", "digits",
                                      "--set", "reading=friendly"])
    assert result.exit_code == 2
    assert "reading=friendly" in result.output and "adversarial" in result.output
    assert "Traceback" not in result.output
