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

    # runs are named after their sampled params; the parent run holds the Pareto front
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{genas_home / 'mlflow.db'}")
    client = MlflowClient()
    for t in study.trials:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.run_name.startswith(f"trial-{t.number} · ") and f"lr={t.params['lr']:.3g}" in run.info.run_name
    parent = study.user_attrs["mlflow_parent_run_id"]
    figures = {a.path for a in client.list_artifacts(parent, "report")}
    assert {"report/pareto_front.png", "report/optimization_history.png", "report/report.html"} <= figures
    assert "report/lineage.png" not in figures  # progan does not grow: no tree to draw
