"""Where genas keeps its state when the user names nothing: ``./genas-runs`` or ``$GENAS_HOME``."""
from __future__ import annotations

import os
from pathlib import Path


def genas_home() -> Path:
    home = Path(os.environ.get("GENAS_HOME", "genas-runs")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_storage_url() -> str:
    """Optuna storage: ``$GENAS_STORAGE`` or a SQLite file in the genas home."""
    return os.environ.get("GENAS_STORAGE") or f"sqlite:///{genas_home() / 'optuna.db'}"


def default_tracking_uri() -> str:
    """MLflow tracking: ``$MLFLOW_TRACKING_URI`` or a SQLite backend in the genas home."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{genas_home() / 'mlflow.db'}"


def artifact_root() -> Path:
    """Artifact folder used for experiments genas creates on a local backend."""
    path = genas_home() / "mlartifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    path = Path(os.environ.get("GENAS_CACHE", genas_home() / "cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path
