import os

import pytest
import torch
from click.testing import CliRunner

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture(scope="session", autouse=True)
def isolated_genas_state(tmp_path_factory):
    """Nothing of the developer's genas state is read or written: a session genas home and cache
    (real-data statistics, pdiff's stage-1 checkpoints) stand in for ./genas-runs and $GENAS_CACHE,
    and a study storage or MLflow server named in the environment is not used."""
    root = tmp_path_factory.mktemp("genas-state")
    mp = pytest.MonkeyPatch()
    mp.setenv("GENAS_HOME", str(root / "home"))
    mp.setenv("GENAS_CACHE", str(root / "cache"))
    for var in ("GENAS_STORAGE", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        mp.delenv(var, raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny networks train faster on one thread, and a busy machine cannot stall their spin-waits.

    A module takes it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; the
    thread count is restored when the module ends.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def genas_home(tmp_path, monkeypatch):
    """A fresh genas home (Optuna SQLite, MLflow SQLite + artifacts, caches) per test."""
    home = tmp_path / "home"
    monkeypatch.setenv("GENAS_HOME", str(home))
    monkeypatch.setenv("GENAS_CACHE", str(home / "cache"))  # a test may count cache hits and misses
    monkeypatch.delenv("GENAS_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


TINY_STUDY = "dggan-mnist5k"


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """One ``genas search dggan --budget tiny`` (its whole beam) for the whole session: (home, CLI result).

    Tests that read it (end to end, report, serving, the browser) must not change its trials.
    """
    from genas.cli import cli

    home = tmp_path_factory.mktemp("e2e") / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("GENAS_HOME", str(home))
    for var in ("GENAS_STORAGE", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        mp.delenv(var, raising=False)
    mp.chdir(home.parent)
    result = CliRunner().invoke(cli, ["search", "dggan", "--budget", "tiny", "--seed", "1"])
    mp.undo()
    assert result.exit_code == 0, result.output + repr(result.exception)
    return home, result


@pytest.fixture()
def in_tiny_study(tiny_study, monkeypatch):
    """The tiny study's home as this test's genas home."""
    home, _ = tiny_study
    monkeypatch.setenv("GENAS_HOME", str(home))
    for var in ("GENAS_STORAGE", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(home.parent)
    return home
