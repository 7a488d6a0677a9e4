"""``genas serve``: a registered generator behind MLflow's own model server (``mlflow models serve``).

The model is resolved once, at start (so ``@champion`` means the champion when the server
started), and served from its local folder with ``--env-manager local``: the server runs in this
Python environment, which has genas.
"""
from __future__ import annotations

import os
import sys

from genas.registry.model import resolve_model_uri
from genas.registry.tracking import configure_mlflow


def serve_command(model_uri: str, host: str, port: int, max_samples: int | None = None,
                  workers: int = 1) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that serve ``model_uri``; GenasError when it does not resolve."""
    uri = configure_mlflow()
    folder = resolve_model_uri(model_uri)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    if max_samples is not None:
        env["GENAS_MAX_SAMPLES"] = str(max_samples)
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(folder), "--env-manager", "local",
           "--host", host, "--port", str(port), "--workers", str(workers)]
    return cmd, env
