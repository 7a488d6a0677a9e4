import os

import pytest

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture()
def genas_home(tmp_path, monkeypatch):
    """A fresh genas home (Optuna SQLite, MLflow SQLite + artifacts, caches) per test."""
    home = tmp_path / "home"
    monkeypatch.setenv("GENAS_HOME", str(home))
    monkeypatch.delenv("GENAS_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return home
