"""progan through the CLI: TPE over the fixed schedule, a multi-objective study on the 8x8 digits."""
import optuna
from click.testing import CliRunner
from optuna.trial import TrialState

from genas.cli import cli


def test_multi_objective_progan_search(genas_home):
    result = CliRunner().invoke(cli, ["search", "progan", "--budget", "tiny", "--trials", "3", "--dataset", "digits",
                                      "--objective", "swd,fid_digitnet", "--study-name", "pg"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    study = optuna.load_study(study_name="pg", storage=f"sqlite:///{genas_home / 'optuna.db'}")
    assert study.metric_names == ["swd", "fid_digitnet"]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and all(len(t.values) == 2 for t in complete)
    assert all(t.user_attrs["arch"]["g"] and len(t.user_attrs["arch"]["g"]) == 2 for t in complete)  # 4 -> 8
    assert {"lr", "width"} <= set(complete[0].params)
    assert "registered genas-pg" in result.output
