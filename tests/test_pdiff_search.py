"""pdiff through the CLI: a tiny search on digits, then generated classifiers out of the registry."""
import optuna
import pytest
import torch
from click.testing import CliRunner
from optuna.trial import TrialState
from safetensors.torch import load_file

import genas
from genas.cli import cli
from genas.data import load_dataset
from genas.spaces.pdiff.generator import PDiffGenerator
from genas.spaces.pdiff.splits import train_heldout


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_pdiff_search_registers_a_generator_of_classifiers(genas_home, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["search", "pdiff", "--budget", "tiny", "--trials", "2", "--dataset", "digits",
                                 "--study-name", "pd"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "registered genas-pd" in result.output
    study = optuna.load_study(study_name="pd", storage=f"sqlite:///{genas_home / 'optuna.db'}")
    assert study.metric_names == ["acc_best"]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2
    assert [t.user_attrs["pdiff"]["stage1_cache"] for t in complete] == ["miss", "hit"]  # the base is trained once
    assert all(t.value > 0.5 and "iou_gen_nearest_orig" in t.user_attrs for t in complete)
    assert complete[0].params["xi_v"] == 1e-3 and complete[0].params["ae_depth"] == 4  # trial 0: the source's setting
    # the memorisation figures and their controls are in the leaderboard, not only in MLflow
    for label in ("iou gen", "held-out", "LOO", "noise", "verdict"):
        assert label in result.output, result.output
    assert f"{complete[0].user_attrs['iou_gen_nearest_orig']:.3g}" in result.output
    shown = runner.invoke(cli, ["study", "show", "pd"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "LOO" in shown.output and complete[1].user_attrs["memorisation"] in shown.output

    uri = "models:/genas-pd@champion"
    out = tmp_path / "generated"
    result = runner.invoke(cli, ["sample", uri, "-n", "3", "-o", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    files = sorted(p.name for p in out.glob("*.safetensors"))
    assert files == ["model-000.safetensors", "model-001.safetensors", "model-002.safetensors"]
    assert (out / "config.json").is_file()

    generator = genas.load(uri)
    assert isinstance(generator, PDiffGenerator)
    models = generator.sample_models(2, seed=1)
    first = load_file(str(out / "model-000.safetensors"))
    assert all(torch.equal(first[k], v) for k, v in models[0].state_dict().items())  # same seed, same model
    _, held = train_heldout(load_dataset("digits"))
    with torch.no_grad():
        accuracies = [float((m(held.images).argmax(1) == held.labels).float().mean()) for m in models]
    assert min(accuracies) > 0.5, accuracies

    import mlflow.pyfunc

    from genas.registry.model import resolve_model_uri

    vectors = mlflow.pyfunc.load_model(str(resolve_model_uri(uri))).predict({"n": 2, "seed": 1})
    assert vectors.shape == (2, 256) and torch.equal(torch.from_numpy(vectors), generator.sample(2, seed=1))


def test_cli_errors_before_the_study_starts(genas_home):
    runner = CliRunner()
    for args, text in ((["--set", "arch=nosuchnet9"], "timm does not know the architecture 'nosuchnet9'"),
                       (["--set", "subset=norms:0,5"], "has 3 normalisation layers"),
                       (["--set", "collect=batch"], "unknown collect='batch'")):
        result = runner.invoke(cli, ["search", "pdiff", "--budget", "tiny", "--trials", "1", "--dataset", "digits",
                                     "--study-name", "bad", *args])
        assert result.exit_code == 2 and text in result.output, result.output
        assert "Traceback" not in result.output
    assert not (genas_home / "optuna.db").exists() or "bad" not in optuna.get_all_study_names(
        f"sqlite:///{genas_home / 'optuna.db'}")
