"""`genas search dggan --budget tiny` (its whole beam), checked through the Optuna DB, MLflow and the registry."""
import json
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from genas.cli import cli
from genas.spaces import get_space

STUDY = "dggan-mnist5k"
MODEL = f"genas-{STUDY}"


@pytest.fixture()
def searched(tiny_study):
    return tiny_study


def test_cli_reports_and_registers(searched):
    home, result = searched
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "leaderboard" in result.output
    assert f"models:/{MODEL}@champion" in result.output
    # the live trial line: images seen, images/s, the intermediate metric
    assert re.search(r"\b(\d+)/\1\b", result.output) and "img/s" in result.output and "swd_quick=" in result.output
    assert (home.parent / f"{STUDY}-champion.png").stat().st_size > 0


def test_optuna_study_records_lineage(searched):
    home, _ = searched
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{home / 'optuna.db'}")
    trials = study.get_trials()
    space = get_space("dggan")
    settings = space.settings(space.resolve_options({}), "tiny", 32)
    # without --trials the search ends with its planned generations and the finalist's: none past them
    assert max(t.user_attrs["generation"] for t in trials) == settings["generations"] + 1
    assert len(trials) == space.default_trials("tiny", space.resolve_options({}), 32)
    roots = [t for t in trials if t.user_attrs["generation"] == 0]
    assert len(roots) == space.budget("tiny")["roots"] and all(t.params["action"] == "root" for t in roots)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == len(trials)
    for t in trials:
        parent = t.user_attrs["parent"]
        if parent is not None:  # a child of one of the k best of the generation before
            p = next(p for p in trials if p.number == parent)
            assert p.user_attrs["generation"] == t.user_attrs["generation"] - 1 and parent in t.user_attrs["genas:top_k"]
            assert t.params["action"] in ("train", "g_layer", "d_layer", "grow")
            # grow first: below 32x32 a lineage only grows; the control comes at full resolution
            assert (t.params["action"] == "grow") == (p.user_attrs["resolution"] < 32)
            images = space.images_at(space.settings(space.resolve_options({}), "tiny", 32), t.user_attrs["generation"])
            assert t.user_attrs["lineage_images"] == p.user_attrs["lineage_images"] + images
    for t in complete:
        assert "arch" in t.user_attrs and "mlflow_run_id" in t.user_attrs
        assert t.values[0] == pytest.approx(t.user_attrs["swd"])
    assert any(t.user_attrs["full_resolution"] for t in complete), "the beam never reached 32x32"
    last = [t for t in trials if t.user_attrs["generation"] == settings["generations"]]
    assert sorted(t.params["action"] for t in last) in (["d_layer", "train"], ["g_layer", "train"])  # control + layer
    # the finalist: the best of the last planned generation trains on, alone, for the budget's finishing images
    [finalist] = [t for t in trials if t.user_attrs["generation"] == settings["generations"] + 1]
    best = min(last, key=lambda t: (t.values[0], t.number))
    assert finalist.params["action"] == "train" and finalist.user_attrs["parent"] == best.number
    assert finalist.user_attrs["lineage_images"] == best.user_attrs["lineage_images"] + settings["finish"]


def test_mlflow_runs_match_trials(searched):
    home, _ = searched
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name(f"genas/{STUDY}")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("genas.role") == "study"]
    assert len(parents) == 1
    # the search ends by attaching the study report to the parent run
    report = {a.path for a in client.list_artifacts(parents[0].info.run_id, "report")}
    assert {"report/lineage.png", "report/optimization_history.png", "report/report.html"} <= report
    assert parents[0].info.status == "FINISHED"
    trial_runs = {r.data.tags["genas.trial"]: r for r in runs if "genas.trial" in r.data.tags}
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{home / 'optuna.db'}")
    assert len(trial_runs) == len(study.trials)
    for t in study.get_trials():
        run = trial_runs[str(t.number)]
        assert run.info.run_id == t.user_attrs["mlflow_run_id"]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.data.tags["genas.parent"] == ("root" if t.user_attrs["parent"] is None else str(t.user_attrs["parent"]))
        assert run.data.tags["genas.action"] == t.user_attrs["action"]
        # named for people: "trial-3 · grow G+D 4→8 16ch 3×3"
        assert run.info.run_name == f"trial-{t.number} · {t.user_attrs['action']}"
        assert t.user_attrs["action"].removeprefix("finalist: ").split()[0] in ("root", "train", "grow", "G", "D")
        if t.state == TrialState.COMPLETE:
            assert run.info.status == "FINISHED"
            assert run.data.metrics["swd"] == pytest.approx(t.values[0])
            assert len(client.get_metric_history(run.info.run_id, "swd_quick")) >= 2
            names = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"samples.png", "config.json", "model", "state"} <= names
            assert run.data.params["action"] == t.params["action"]
            # a sample grid at every evaluation: each quick eval and the final one, at distinct steps
            grids = [a.path for a in client.list_artifacts(run.info.run_id, "images") if a.path.endswith(".png")]
            steps = {int(p.split("+step+")[1].split("+")[0]) for p in grids}
            assert len(grids) == len(steps) >= 2


def test_champion_alias_points_at_best_trial(searched):
    home, _ = searched
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    mlflow.set_registry_uri(f"sqlite:///{home / 'mlflow.db'}")
    version = MlflowClient().get_model_version_by_alias(MODEL, "champion")
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{home / 'optuna.db'}")
    at_full = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if t.user_attrs["full_resolution"]]
    # the finalist's trial re-scored its parent on its own draw and both on two draws more; of the
    # two, the parent is champion only if better on every draw
    [finalist] = [t for t in at_full if t.user_attrs.get("finalist")]
    [paired] = finalist.user_attrs["parent_values"]
    parent = next(t for t in at_full if t.number == finalist.user_attrs["parent"])
    assert paired != parent.values[0]  # a new draw, not the parent's own score copied
    run = MlflowClient().get_run(finalist.user_attrs["mlflow_run_id"])
    assert run.data.metrics["parent_swd"] == pytest.approx(paired)
    draws = finalist.user_attrs["paired_draws"]
    assert len(draws) == 3 and draws[0] == [finalist.values[0], paired]
    assert len({f for f, _ in draws}) == 3 and len({p for _, p in draws}) == 3  # three latent draws, not one thrice
    loser = finalist.number if all(p < f for f, p in draws) else parent.number
    best = min((t for t in at_full if t.number != loser), key=lambda t: (t.values[0], t.number))
    assert version.run_id == best.user_attrs["mlflow_run_id"]
    assert best.user_attrs["resolution"] == 32


def readme_python_block() -> str:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    return next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "genas.load(" in b)


def test_load_and_sample_in_a_fresh_process(searched):
    home, _ = searched
    block = readme_python_block()
    assert f"models:/{MODEL}@champion" in block
    code = block + """
import base64, io, json
import numpy as np
from PIL import Image
a, b, c = x, g.sample(16, seed=0), g.sample(16, seed=1)
decoded = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(s)))) for s in pngs])
print(json.dumps({"shape": list(a.shape), "dtype": str(a.dtype), "same": bool((a == b).all()),
                  "differs": bool((a != c).any()), "pyfunc": list(arr.shape), "pyfunc_dtype": str(arr.dtype),
                  "pyfunc_same": bool((arr == a[:4].numpy()).all()),
                  "png_same": bool((decoded == a[:4, 0].numpy()).all())}))
"""
    env = {"GENAS_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(home.parent),
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=home.parent, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["shape"][0] == 16 and got["shape"][1] == 1 and got["dtype"] == "torch.uint8"
    assert got["same"] and got["differs"]
    assert got["pyfunc"] == [4, *got["shape"][1:]] and got["pyfunc_dtype"] == "uint8" and got["pyfunc_same"]
    assert got["png_same"], "the default PNG output must decode to the same images"


def test_study_show_and_registry_list(searched):
    home, _ = searched
    runner = CliRunner(env={"GENAS_HOME": str(home)})
    shown = runner.invoke(cli, ["study", "show", STUDY])
    assert shown.exit_code == 0, shown.output
    assert "best: trial" in shown.output and "root" in shown.output
    listed = runner.invoke(cli, ["study", "list"])
    assert STUDY in listed.output
    reg = runner.invoke(cli, ["registry", "list"])
    assert MODEL in reg.output and "@champion" in reg.output
    out = home.parent / "grid.png"
    sampled = runner.invoke(cli, ["sample", f"models:/{MODEL}@champion", "-n", "9", "-o", str(out), "--seed", "3"])
    assert sampled.exit_code == 0, sampled.output
    assert out.stat().st_size > 0
    promoted = runner.invoke(cli, ["registry", "promote", STUDY, "--alias", "staging"])
    assert promoted.exit_code == 0 and "@staging" in promoted.output


def test_eval_scores_a_model_and_a_folder(searched):
    home, _ = searched
    runner = CliRunner(env={"GENAS_HOME": str(home)})
    scored = runner.invoke(cli, ["eval", "--fake", f"models:/{MODEL}@champion", "--metrics", "swd,fid_digitnet",
                                 "-n", "64"])
    assert scored.exit_code == 0, scored.output + repr(scored.exception)
    values = dict(line.split("\t") for line in scored.output.strip().splitlines())
    assert {"swd", "swd_32", "swd_16", "fid_digitnet"} <= set(values)

    from genas.data import load_dataset
    from genas.images import save_grid

    folder = home.parent / "real-digits"
    for i, img in enumerate(load_dataset("mnist5k").uint8()[::50]):
        save_grid(img[None], folder / f"{i}.png", nrow=1, scale=1)
    # save_grid pads each image by 2 px: resized back to 32, these are close to the real set
    real = runner.invoke(cli, ["eval", "--fake", str(folder), "--metrics", "swd"])
    assert real.exit_code == 0, real.output
    real_swd = float(dict(line.split("\t") for line in real.output.strip().splitlines())["swd"])
    assert real_swd < float(values["swd"])


def test_worker_joins_and_resumes(genas_home):
    runner = CliRunner()
    created = runner.invoke(cli, ["search", "dggan", "--budget", "tiny", "--trials", "0", "--study-name", "joined"])
    assert created.exit_code == 0, created.output
    for _ in range(2):  # a worker joins the new study, another resumes it
        result = runner.invoke(cli, ["worker", "joined", "--trials", "1"])
        assert result.exit_code == 0, result.output + repr(result.exception)
    study = optuna.load_study(study_name="joined", storage=f"sqlite:///{genas_home / 'optuna.db'}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert [t.user_attrs["genas:slot"] for t in study.trials] == ["0/0", "0/1"]


def test_the_baseline_stands_after_an_upgrade_changed_its_budget(in_tiny_study, monkeypatch):
    """The reference the tiny study trained is reused when dcgan's budget values have changed
    since (it is a finished record); training another trial of that reference study is refused."""
    from genas.errors import GenasError
    from genas.search.baseline import BASELINE_ATTR, reference
    from genas.search.study import load_study, open_storage
    from genas.search.worker import run_worker

    storage = open_storage()
    study, spec = load_study(STUDY, storage)
    record = study.user_attrs[BASELINE_ATTR]
    dcgan = get_space("dcgan")
    monkeypatch.setitem(dcgan.budgets, "tiny", {**dcgan.budgets["tiny"], "images_per_trial": 7})
    assert reference(spec, record["champion_images"], None, device="cpu").number == record["trial"]
    ref_study, ref_spec = load_study(record["study"], storage)
    before = len(ref_study.trials)
    with pytest.raises(GenasError, match="images_per_trial .* -> 7"):
        run_worker(ref_study, ref_spec, n_trials=1, timeout=None, device="cpu")
    assert len(ref_study.trials) == before
