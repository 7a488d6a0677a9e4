"""The study report: the growth-tree layout, `genas report` and what it attaches to the parent run."""
import re

import mlflow
import optuna
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from genas.cli import cli
from genas.report.lineage import lineage_nodes

STUDY = "dggan-mnist5k"


def trial(number: int, parent, value: float | None = 1.0):  # noqa: ANN001
    t = create_trial(params={"lr": 0.001}, distributions={"lr": FloatDistribution(1e-4, 1e-2)},
                     value=value, state=TrialState.COMPLETE if value is not None else TrialState.FAIL,
                     user_attrs={"parent": parent, "action": "G +conv 8ch 3×3 @4"})
    t.number = number
    return t


def test_tidy_tree_puts_parents_over_their_children():
    # 0 ─┬─ 1 ─┬─ 3
    #    │     └─ 4 ── 5
    #    └─ 2
    # 6 (a second root); 7 is not a growth trial and stays out
    trials = [trial(0, None), trial(1, 0), trial(2, 0), trial(3, 1), trial(4, 1, None), trial(5, 4), trial(6, None)]
    other = trial(7, None)
    del other.user_attrs["parent"]
    nodes = lineage_nodes(trials + [other])
    assert set(nodes) == set(range(7))
    assert [nodes[n].depth for n in range(7)] == [0, 1, 1, 2, 2, 3, 0]
    leaves = sorted(nodes[n].x for n in (3, 5, 2, 6))
    assert leaves == [0, 1, 2, 3], "leaves take consecutive columns"
    for parent in (0, 1, 4):
        xs = [nodes[c].x for c in nodes[parent].children]
        assert nodes[parent].x == (min(xs) + max(xs)) / 2
    assert len({(n.x, n.depth) for n in nodes.values()}) == len(nodes), "two nodes share a place"


def test_report_page_and_parent_run_artifacts(in_tiny_study):
    home = in_tiny_study
    out = home.parent / "report.html"
    result = CliRunner().invoke(cli, ["report", STUDY, "-o", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    page = out.read_text()
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{home / 'optuna.db'}")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    # self-contained: every image inline, nothing fetched from anywhere
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert page.count('src="data:image/png;base64,') >= 3
    for title in ("Leaderboard", "Growth tree", "Optimisation history", "Best sample grids"):
        assert f"<h2>{title}</h2>" in page
    rows = re.findall(r"<tr(?: class=\"champion\")?><td>(\d+)</td><td>(\d+)</td>", page)
    assert sorted(int(t) for _, t in rows) == sorted(t.number for t in complete)
    # the champion is the best trial at the dataset's resolution, not always rank 1 of all trials
    from genas.registry.promote import best_trial

    champion = best_trial(study)
    assert re.search(rf'<tr class="champion"><td>\d+</td><td>{champion.number}</td>', page)

    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    client = MlflowClient()
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.data.tags["genas.champion_trial"] == str(champion.number)
    assert parent.data.metrics["best_swd"] == champion.values[0]
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/lineage.png", "report/optimization_history.png", "report/report.html"} <= names
