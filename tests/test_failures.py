"""A trial that raises is FAIL with its reason in Optuna and MLflow; the study goes on."""
import mlflow
import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from genas.errors import TrainingDiverged
from genas.search.study import StudySpec, create_or_resume, open_storage
from genas.search.worker import run_worker
from genas.spaces.base import Space, register_space


class FlakyGenerator:
    def __init__(self, level: float) -> None:
        self.level = level

    def sample(self, n, seed=None):
        g = torch.Generator().manual_seed(0 if seed is None else seed)
        return (torch.rand(n, 1, 8, 8, generator=g) * 255 * self.level).to(torch.uint8)

    def state(self):
        return {"space": "flaky"}, {"level": torch.tensor([self.level])}

    @classmethod
    def from_state(cls, config, tensors):
        return cls(float(tensors["level"][0]))


@register_space
class FlakySpace(Space):
    """Trial 1 runs out of memory, trial 2 diverges; the others train."""

    name = "flaky"
    generator_cls = FlakyGenerator
    budgets = {"tiny": {"images_per_trial": 1, "eval_samples": 32, "quick_eval_samples": 16, "trials": 4}}

    def suggest(self, trial, ctx):
        return {"level": trial.suggest_float("level", 0.1, 1.0)}

    def train(self, config, ctx):
        if ctx.trial.number == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if ctx.trial.number == 2:
            raise TrainingDiverged("loss_d is nan at 64 images; lower --lr")
        ctx.report(1, ctx.quick_eval(FlakyGenerator(config["level"])))
        return FlakyGenerator(config["level"])


def test_failing_trials_are_recorded_and_the_study_goes_on(genas_home):
    spec = StudySpec("flaky", "digits", "tiny", ("swd",), "random", "none", 0)
    study = create_or_resume("flaky", spec, open_storage())
    study = run_worker(study, spec, n_trials=4, timeout=None, device="cpu")
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    reasons = {t.number: t.user_attrs.get("fail_reason", "") for t in study.get_trials()}
    assert "out of memory" in reasons[1] and "nan" in reasons[2]

    mlflow.set_tracking_uri(f"sqlite:///{genas_home / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name("genas/flaky")
    runs = {r.data.tags.get("genas.trial"): r for r in client.search_runs([exp.experiment_id])}
    assert runs["1"].info.status == "FAILED" and "out of memory" in runs["1"].data.tags["genas.fail_reason"]
    assert runs["2"].info.status == "FAILED"
    assert runs["0"].info.status == runs["3"].info.status == "FINISHED"


def test_resuming_with_another_space_is_refused(genas_home):
    import pytest

    from genas.errors import GenasError

    storage = open_storage()
    create_or_resume("s", StudySpec("flaky", "digits", "tiny", ("swd",), "random", "none", 0), storage)
    with pytest.raises(GenasError, match="another --study-name"):
        create_or_resume("s", StudySpec("progan", "digits", "tiny", ("swd",), "tpe", "none", 0), storage)
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 0


def test_a_budget_whose_values_changed_is_refused_on_resume(genas_home, monkeypatch):
    """A later genas that changes a budget's values (e.g. dggan's finishing images) must not run
    new trials of a study made on the old ones; a study made before the values were stored runs."""
    from genas.errors import GenasError
    from genas.search.study import BUDGET_VALUES_ATTR

    storage = open_storage()
    spec = StudySpec("flaky", "digits", "tiny", ("swd",), "random", "none", 0)
    create_or_resume("s", spec, storage)
    create_or_resume("s", spec, storage)  # the same values: resumes
    monkeypatch.setitem(FlakySpace.budgets, "tiny", {**FlakySpace.budgets["tiny"], "images_per_trial": 2})
    with pytest.raises(GenasError, match=r"budget 'tiny' had other values \(images_per_trial 1 -> 2\).*--study-name"):
        create_or_resume("s", spec, storage)
    study = optuna.load_study(study_name="s", storage=storage)
    with pytest.raises(GenasError, match="images_per_trial 1 -> 2"):  # `genas worker` takes this path
        run_worker(study, spec, n_trials=1, timeout=None, device="cpu")
    assert len(study.trials) == 0

    study.set_user_attr(BUDGET_VALUES_ATTR, None)  # made by a genas that did not store them
    assert run_worker(create_or_resume("s", spec, storage), spec, n_trials=1, timeout=None,
                      device="cpu").trials[0].state == TrialState.COMPLETE


@register_space
class SteadySpace(FlakySpace):
    """Every trial trains."""

    name = "steady"

    def train(self, config, ctx):
        ctx.report(1, ctx.quick_eval(FlakyGenerator(config["level"])))
        return FlakyGenerator(config["level"])


def test_unwritable_artifacts_and_a_full_disk_fail_the_trial_only(genas_home, monkeypatch):
    import errno
    import shutil

    from genas.registry.promote import promote
    from genas.registry.tracking import RunLogger

    spec = StudySpec("steady", "digits", "tiny", ("swd",), "random", "none", 0)
    study = run_worker(create_or_resume("steady", spec, open_storage()), spec, n_trials=1, timeout=None, device="cpu")
    champion = promote(study)
    first = study.trials[0]

    def full_disk(self, local_dir, artifact_path=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(local_dir))

    with monkeypatch.context() as m:
        m.setattr(RunLogger, "artifacts", full_disk)
        run_worker(study, spec, n_trials=1, timeout=None, device="cpu")

    store = genas_home / "mlartifacts" / "steady"
    shutil.move(store, store.with_name("moved"))
    store.write_text("a file where the artifact folder should be")
    try:
        run_worker(study, spec, n_trials=1, timeout=None, device="cpu")
    finally:
        store.unlink()
        shutil.move(store.with_name("moved"), store)

    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert "No space left on device" in trials[1].user_attrs["fail_reason"]
    assert "steady" in trials[2].user_attrs["fail_reason"]  # names the path it could not write
    assert trials[0].values == first.values and trials[0].user_attrs == first.user_attrs
    assert promote(study).version == champion.version  # the registry still points at trial 0


def test_a_trial_ended_by_another_worker_is_recognised_and_not_fatal():
    """Optuna's refusal to tell a trial another worker already failed (a false stale verdict on an
    overloaded machine) is recognised by the worker, which drops that result and goes on."""
    from genas.search.worker import _ended_elsewhere

    study = optuna.create_study()
    trial = study.ask()
    study.tell(trial, state=optuna.trial.TrialState.FAIL)  # what the other worker did
    with pytest.raises(Exception) as refused:
        study.tell(trial, 1.0)
    assert _ended_elsewhere(refused.value)
    assert not _ended_elsewhere(ValueError("some other problem"))


def test_a_finalist_whose_parent_cannot_be_rescored_keeps_its_own_score(genas_home, monkeypatch):
    # the paired re-scoring is an extra: when the parent's model cannot be read back, the finalist
    # completes on its own score, and the champion is chosen on the separate scores
    def unreadable(folder):
        raise OSError(f"no model in {folder}")

    monkeypatch.setattr("genas.search.objective.load_generator_from_dir", unreadable)
    from genas.registry.promote import best_trial
    from genas.spaces import get_space

    spec = StudySpec("dggan", "digits", "tiny", ("swd",), "growth", "none", 0)
    study = create_or_resume("dggan-digits", spec, open_storage())
    trials = get_space("dggan").default_trials("tiny", get_space("dggan").resolve_options({}), 8)
    study = run_worker(study, spec, n_trials=trials, timeout=None, device="cpu", stop_at_plan=True)
    [finalist] = [t for t in study.get_trials() if t.user_attrs.get("finalist")]
    assert finalist.state == TrialState.COMPLETE and "parent_values" not in finalist.user_attrs
    at_full = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if t.user_attrs["full_resolution"]]
    assert best_trial(study).number == min(at_full, key=lambda t: (t.values[0], t.number)).number
