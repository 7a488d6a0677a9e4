"""`genas server`: MLflow's tracking server for a team; a study logs through it, lineage included; started
the way a supervisor starts it (the venv's script, the venv not on PATH), SIGTERM stops its whole tree."""
import subprocess
import sys

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from servers import BARE_PATH, free_port, genas_script, output, running, sigterm_and_check_all_gone

pytestmark = pytest.mark.slow


def test_a_study_logs_and_grows_through_the_tracking_server(genas_home, tmp_path):
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    artifacts = tmp_path / "shared-artifacts"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    # two uvicorn workers: the tree a team server runs (MLflow, uvicorn's supervisor, its workers)
    cmd = genas_script("server", "--backend-store-uri", backend, "--artifacts-destination", str(artifacts),
                       "--storage", storage, "--port", str(port), "--workers", "2")
    with running(cmd, f"{uri}/health", env={"GENAS_HOME": str(genas_home), "PATH": BARE_PATH}) as server:
        env = {"GENAS_HOME": str(genas_home), "MLFLOW_TRACKING_URI": uri, "PATH": "/usr/bin:/bin",
               "HOME": str(tmp_path)}
        # digits are 8x8: the tiny beam reaches it in 6 trials (2 roots, 2 generations of 2)
        out = subprocess.run([sys.executable, "-m", "genas.cli", "search", "dggan", "--budget", "tiny",
                              "--dataset", "digits", "--storage", storage], env=env, capture_output=True,
                             text=True, timeout=600, cwd=tmp_path)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        # the registry too: an earlier test in this process may have set MLflow's global registry URI
        client = MlflowClient(uri, registry_uri=uri)
        study = optuna.load_study(study_name="dggan-digits", storage=storage)
        children = [t for t in study.trials if t.user_attrs.get("parent") is not None]
        assert children and all(t.state == TrialState.COMPLETE for t in children)
        for t in study.trials:
            run = client.get_run(t.user_attrs["mlflow_run_id"])
            assert run.info.artifact_uri.startswith("mlflow-artifacts:"), run.info.artifact_uri
        assert client.get_model_version_by_alias("genas-dggan-digits", "champion"), out.stdout[-2000:]
        sigterm_and_check_all_gone(server, port)
    banner = output(server)
    assert f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{port}" in banner
    assert f"genas worker STUDY --storage {storage}" in banner
    # the artifacts (states a child read, models) sit in the shared destination, not the genas home
    assert list(artifacts.rglob("tensors.safetensors")) and not (genas_home / "mlartifacts").exists()
