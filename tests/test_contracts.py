"""The Space contract for families scored on their own metrics and generating parameters (pdiff, snn).

A small in-test space stands in for them: it maximises its own metric, samples parameter
vectors, has a study-level option, and must travel through search, registry, sample and pyfunc.
"""
from __future__ import annotations

import optuna
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from genas.cli import cli
from genas.errors import GenasError
from genas.spaces import base


class ToyParameters:
    outputs = "parameters"

    def __init__(self, width: int, center: torch.Tensor) -> None:
        self.width, self.center = width, center

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        return self.center + 0.01 * torch.randn(n, self.width, generator=gen)

    def sample_models(self, n: int, seed: int | None = None) -> list[torch.nn.Module]:
        models = []
        for vector in self.sample(n, seed):
            m = torch.nn.Linear(self.width, 1, bias=False)
            m.weight.data.copy_(vector[None])
            models.append(m)
        return models

    def state(self):
        return {"space": "toyparams", "width": self.width}, {"center": self.center}

    @classmethod
    def from_state(cls, config, tensors):
        return cls(config["width"], tensors["center"])


class ToyParameterSpace(base.Space):
    name = "toyparams"
    generator_cls = ToyParameters
    own_metrics = {"acc": "maximize", "spread": "minimize"}
    default_objectives = ("acc",)
    scores_images = False
    options = {"width": 4, "labels": True}
    budgets = {b: {"images_per_trial": 10, "batch_size": 1, "eval_samples": 4, "quick_eval_samples": 4,
                   "reports": 1, "trials": 3} for b in base.BUDGETS}

    def check(self, dataset, options, *, budget=None, objectives=()):
        if options["labels"] and dataset.labels is None:
            raise GenasError(f"space toyparams needs labels; {dataset.name} has none")

    def suggest(self, trial, ctx):
        return {"x": trial.suggest_float("x", 0.0, 1.0), "use_boost": trial.suggest_categorical("use_boost", (False, True))}

    def train(self, config, ctx):
        assert ctx.quick_eval(None) == {}  # no images: no quick SWD
        ctx.report(10, {"acc_quick": self._acc(config["x"])})
        center = torch.full((ctx.options["width"],), float(config["x"]))
        return ToyParameters(ctx.options["width"], center + (10.0 if config["use_boost"] else 0.0))

    def score(self, generator, names, ctx):
        boost = float(generator.center[0]) > 5
        x = float(generator.center[0]) - (10.0 if boost else 0.0)
        return {"acc": self._acc(x) + boost, "spread": abs(x - 0.5), "extra_logged": 1.0}

    @staticmethod
    def _acc(x: float) -> float:
        return 1.0 - (x - 0.7) ** 2


@pytest.fixture()
def toy_space(monkeypatch):
    monkeypatch.setitem(base._SPACES, "toyparams", ToyParameterSpace)
    return ToyParameterSpace()


def test_options_are_typed_and_checked(toy_space):
    assert toy_space.resolve_options({}) == {"width": 4, "labels": True}
    assert toy_space.resolve_options({"width": "7", "labels": "false"}) == {"width": 7, "labels": False}
    with pytest.raises(GenasError, match="no option depth; its options"):
        toy_space.resolve_options({"depth": "2"})
    with pytest.raises(GenasError, match="width='wide' is not a int"):
        toy_space.resolve_options({"width": "wide"})


def test_own_metric_study_maximises_registers_and_samples_parameters(toy_space, genas_home, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["search", "toyparams", "--budget", "tiny", "--dataset", "digits", "--trials", "4",
                                 "--set", "width=3", "--study-name", "toy", "--seed", "3"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{genas_home / 'optuna.db'}")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["options"] == {"width": "3"}
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4 and all("extra_logged" in t.user_attrs and "swd" not in t.user_attrs for t in complete)
    best = max(complete, key=lambda t: t.value)
    assert f"(trial {best.number})" in result.output and "genas sample models:/genas-toy@champion" in result.output
    boosted = {t.params["use_boost"] for t in complete}
    assert boosted == {False, True}, "seed 3 draws the switch both ways; pick another seed if Optuna changed"

    # the switch is an ablation: study show and the parent run say what the module is worth (+1 accuracy)
    shown = runner.invoke(cli, ["study", "show", "toy"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "maximise acc" in shown.output and "width=3" in shown.output
    row = next(line.split("│") for line in shown.output.splitlines() if line.split("│")[1:2] == [" use_boost "])
    assert float(row[-2]) > 0.5  # gain
    from mlflow.tracking import MlflowClient

    parent = MlflowClient(f"sqlite:///{genas_home / 'mlflow.db'}").get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.data.metrics["module_gain_use_boost"] > 0.5

    out = tmp_path / "generated"
    result = runner.invoke(cli, ["sample", "models:/genas-toy@champion", "-n", "2", "-o", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    weights = [load_file(str(out / f"model-{i:03d}.safetensors"))["weight"] for i in range(2)]
    assert all(w.shape == (1, 3) for w in weights)
    expected = best.params["x"] + (10.0 if best.params["use_boost"] else 0.0)
    assert torch.allclose(weights[0], torch.full((1, 3), expected), atol=0.05)

    result = runner.invoke(cli, ["eval", "--dataset", "digits", "--fake", "models:/genas-toy@champion"])
    assert result.exit_code == 2 and "generates parameters, not images" in result.output

    import mlflow.pyfunc

    from genas.registry.tracking import configure_mlflow

    configure_mlflow()
    model = mlflow.pyfunc.load_model("models:/genas-toy@champion")
    vectors = model.predict({"n": 2, "seed": 1})
    assert vectors.shape == (2, 3) and vectors.dtype.name == "float32"
    assert torch.allclose(torch.from_numpy(vectors), torch.cat(weights))
    with pytest.raises(Exception, match="parameter vectors, not images"):
        model.predict({"n": 2, "format": "png"})


@pytest.mark.parametrize("args, words", [
    (["--objective", "swd"], "scored on acc, spread, not swd; pass e.g. --objective acc"),
    (["--objective", "acc,accuracy"], "scored on acc, spread, not accuracy"),
    (["--set", "depth=2"], "no option depth"),
    (["--dataset", "image:astronaut@8"], "needs labels"),
])
def test_bad_objective_or_option_fails_before_the_study(toy_space, genas_home, args, words):
    result = CliRunner().invoke(cli, ["search", "toyparams", "--budget", "tiny", "--dataset", "digits", *args])
    assert result.exit_code == 2 and words in result.output, result.output
    assert not (genas_home / "optuna.db").exists() or "toyparams" not in str(
        optuna.get_all_study_summaries(f"sqlite:///{genas_home / 'optuna.db'}"))
