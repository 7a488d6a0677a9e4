"""MLflow runs for studies and trials: one experiment per study, a parent run, a nested run per trial.

All calls go through ``MlflowClient`` with explicit run ids (no fluent "active run"), so a
worker process can log any trial of any study without global state.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from genas.home import artifact_root, default_tracking_uri

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

RUN_ID_ATTR = "mlflow_run_id"  # Optuna user attr linking a trial to its MLflow run
MODEL_ARTIFACT = "model"
STATE_ARTIFACT = "state"
MAX_PARAM_LENGTH = 6000
# The MLflow UI opens an experiment in its model-training view (runs table) rather than GenAI's.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def configure_mlflow() -> str:
    """Point MLflow at ``$MLFLOW_TRACKING_URI`` or the genas home's SQLite backend."""
    uri = default_tracking_uri()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    return uri


_initialised: set[str] = set()


def client() -> MlflowClient:
    uri = configure_mlflow()
    if uri not in _initialised:
        _initialise_backend(uri)
        _initialised.add(uri)
    return MlflowClient()


def _initialise_backend(uri: str) -> None:
    """Create a local SQLite backend's tables under a file lock.

    MLflow migrates a new database on first use; several workers starting together on one
    SQLite file would otherwise run the migrations at the same time and fail.
    """
    if not uri.startswith("sqlite:///"):
        return
    import fcntl

    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".init-lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _is_local(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "databricks"))


def experiment_name(study_name: str) -> str:
    return f"genas/{study_name}"


def ensure_experiment(study_name: str) -> str:
    """The study's experiment id, creating it (with its artifacts under the genas home when local)."""
    c = client()
    name = experiment_name(study_name)
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        if EXPERIMENT_KIND_TAG not in exp.tags:
            c.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    location = (artifact_root() / study_name).as_uri() if _is_local(mlflow.get_tracking_uri()) else None
    try:
        tags = {"genas.study": study_name, EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        return c.create_experiment(name, artifact_location=location, tags=tags)
    except mlflow.exceptions.MlflowException:
        # Another worker created it between our lookup and our create.
        return c.get_experiment_by_name(name).experiment_id


def start_run(experiment_id: str, name: str, tags: dict[str, str], parent_run_id: str | None = None) -> str:
    all_tags = {MLFLOW_RUN_NAME: name, **tags}
    if parent_run_id:
        all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
    return client().create_run(experiment_id, tags=all_tags, run_name=name).info.run_id


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """Nested config to MLflow params (``a.b`` keys, JSON for lists)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            out[name] = text[:MAX_PARAM_LENGTH]
    return out


class RunLogger:
    """Thin wrapper over one run id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._client = client()
        self._images: set[tuple[str, int]] = set()

    def params(self, config: dict) -> None:
        items = [Param(k, v) for k, v in flatten(config).items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self._client.log_batch(self.run_id, params=items[i:i + 100])

    def metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and math.isfinite(v)]
        if items:
            self._client.log_batch(self.run_id, metrics=items)

    def tags(self, tags: dict[str, Any]) -> None:
        items = [RunTag(k, v if isinstance(v, str) else json.dumps(v)) for k, v in tags.items()]
        if items:
            self._client.log_batch(self.run_id, tags=items)

    def artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        self._client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def artifact(self, local_file: Path, artifact_path: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(local_file), artifact_path)

    def image(self, images: "torch.Tensor", key: str, step: int) -> None:
        """A sample grid as an MLflow image at ``step`` (once per key and step): the UI shows a slider."""
        from genas.images import grid_image

        if (key, step) in self._images:
            return
        self._images.add((key, step))
        self._client.log_image(self.run_id, grid_image(images), key=key, step=step)

    def download(self, artifact_path: str, dst: Path) -> Path:
        return Path(self._client.download_artifacts(self.run_id, artifact_path, str(dst)))

    def fail(self, reason: str, status: str = "FAILED") -> None:
        """End the run as failed (FAILED, or KILLED when stopped from outside) with its reason."""
        self.tags({"genas.state": "FAIL", "genas.fail_reason": reason})
        self.finish(status)

    def finish(self, status: str = "FINISHED") -> None:
        self._client.set_terminated(self.run_id, status=status)
