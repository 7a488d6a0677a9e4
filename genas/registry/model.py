"""The MLflow pyfunc model that wraps any genas Generator, built from safetensors + JSON.

The model folder holds ``generator/config.json`` and ``generator/tensors.safetensors``; the
pyfunc is logged as *models from code* (``pyfunc_entry.py``), so nothing in it is pickled.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from genas.errors import GenasError
from genas.spaces.base import Generator, Tensors, generator_from_state

CONFIG_FILE = "config.json"
TENSORS_FILE = "tensors.safetensors"
MAX_SAMPLES_PER_REQUEST = 1024


def write_state(folder: Path, config: dict, tensors: Tensors) -> Path:
    """Write config + tensors into ``folder``, each file complete or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    for name, write in ((TENSORS_FILE, lambda p: save_file(tensors, p)),
                        (CONFIG_FILE, lambda p: Path(p).write_text(json.dumps(config, indent=2)))):
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        os.close(fd)
        write(tmp)
        os.replace(tmp, folder / name)
    return folder


def read_state(folder: Path) -> tuple[dict, Tensors]:
    config_path, tensors_path = folder / CONFIG_FILE, folder / TENSORS_FILE
    if not config_path.is_file() or not tensors_path.is_file():
        raise GenasError(f"{folder} has no {CONFIG_FILE} + {TENSORS_FILE}; it is not a genas checkpoint")
    try:
        config = json.loads(config_path.read_text())
        tensors = load_file(str(tensors_path))
    except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt file
        raise GenasError(f"checkpoint in {folder} is corrupt ({type(exc).__name__}: {exc}); "
                         "re-run the trial or register another version") from exc
    return config, tensors


def load_generator_from_dir(model_dir: Path) -> Generator:
    """A pyfunc model folder (``artifacts/generator``), or a bare checkpoint folder."""
    candidates = (model_dir / "artifacts" / "generator", model_dir / "generator", model_dir)
    folder = next(c for c in candidates if c.is_dir() or c == model_dir)
    config, tensors = read_state(folder)
    return generator_from_state(config, tensors)


def resolve_model_uri(model_uri: str) -> Path:
    """Download (or locate) a model URI and return its local folder; GenasError when it does not resolve."""
    local = Path(model_uri).expanduser()
    if local.exists():
        return local
    import mlflow

    from genas.registry.tracking import configure_mlflow

    configure_mlflow()
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types for "not found"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GenasError(f"model URI {model_uri!r} does not resolve ({first_line}); "
                         "see `genas registry list` for registered models, or use runs:/<run_id>/model") from exc


def load_generator(model_uri: str) -> Generator:
    return load_generator_from_dir(resolve_model_uri(model_uri))


def parse_request(model_input: Any) -> tuple[int, int | None]:
    """``{"n": 4, "seed": 0}`` as a dict, a one-row DataFrame or a list of one dict."""
    if hasattr(model_input, "to_dict"):  # pandas DataFrame from the REST server
        rows = model_input.to_dict(orient="records")
        model_input = rows[0] if rows else {}
    if isinstance(model_input, list) and len(model_input) == 1 and isinstance(model_input[0], dict):
        model_input = model_input[0]
    if not isinstance(model_input, dict):
        raise GenasError('input must be {"n": <count>, "seed": <int, optional>}')
    unknown = set(model_input) - {"n", "seed"}
    if unknown:
        raise GenasError(f"unknown input fields {sorted(unknown)}; only 'n' and 'seed' are accepted")
    n, seed = _scalar(model_input.get("n", 1)), _scalar(model_input.get("seed"))
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 < n <= MAX_SAMPLES_PER_REQUEST:
        raise GenasError(f"'n' must be an integer in 1..{MAX_SAMPLES_PER_REQUEST}, got {n!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise GenasError(f"'seed' must be an integer, got {seed!r}")
    return int(n), None if seed is None else int(seed)


def _scalar(value: Any) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) == 1:
        value = value[0]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


with warnings.catch_warnings():
    # MLflow warns on import and suggests predict() type hints, which would make it reject the
    # plain dict input; neither is for genas users.
    warnings.simplefilter("ignore", UserWarning)
    import mlflow.pyfunc

    class GenasPyfuncModel(mlflow.pyfunc.PythonModel):
        """``predict({"n": 4, "seed": 0})`` → uint8 array [n, C, H, W]."""

        def load_context(self, context) -> None:  # noqa: ANN001 - MLflow's type
            self.generator = load_generator_from_dir(Path(context.artifacts["generator"]))

        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
            n, seed = parse_request(model_input)
            with torch.no_grad():
                return self.generator.sample(n, seed=seed).numpy()


def save_pyfunc_model(path: Path, generator: Generator) -> Path:
    """Write an MLflow pyfunc model folder for ``generator`` at ``path`` (must not exist)."""
    import genas

    config, tensors = generator.state()
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = write_state(Path(tmp) / "generator", config, tensors)
        with warnings.catch_warnings():  # the same type-hint advice, raised again on save
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.save_model(
                path=str(path),
                python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
                artifacts={"generator": str(state_dir)},
                pip_requirements=[f"genas=={genas.__version__}", f"torch>={torch.__version__.split('+')[0]}"],
            )
    return path
