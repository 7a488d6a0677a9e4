"""The MLflow pyfunc model that wraps any genas Generator, built from safetensors + JSON.

The model folder holds ``generator/config.json`` and ``generator/tensors.safetensors``; the
pyfunc is logged as *models from code* (``pyfunc_entry.py``), so nothing in it is pickled.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

with warnings.catch_warnings():  # MLflow's own type hints warn on import; not for genas users
    warnings.simplefilter("ignore", UserWarning)
    import mlflow.pyfunc

from genas.errors import GenasError, first_line
from genas.spaces.base import Generator, Tensors, generator_from_state, outputs_of

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
        raise GenasError(f"model URI {model_uri!r} does not resolve ({first_line(exc)}); "
                         "see `genas registry list` for registered models, or use runs:/<run_id>/model") from exc


def load_generator(model_uri: str) -> Generator:
    return load_generator_from_dir(resolve_model_uri(model_uri))


@dataclass(frozen=True)
class SampleRequest:
    n: int
    seed: int | None
    format: str  # "png": one base64 PNG per image; "array": uint8 [n, C, H, W]


def max_samples_per_request() -> int:
    """``$GENAS_MAX_SAMPLES`` (set by ``genas serve --max-samples``) or 1024."""
    value = os.environ.get("GENAS_MAX_SAMPLES", "")
    return int(value) if value.isdigit() and int(value) > 0 else MAX_SAMPLES_PER_REQUEST


def parse_request(model_input: Any) -> SampleRequest:
    """``{"n": 4, "seed": 0, "format": "png"}`` as a dict, a one-row DataFrame or a list of one dict."""
    if hasattr(model_input, "to_dict"):  # pandas DataFrame from the REST server
        rows = model_input.to_dict(orient="records")
        if len(rows) != 1:
            raise GenasError(f'send one request object {{"n": …, "seed": …}}, got {len(rows)} rows')
        model_input = rows[0]
    if isinstance(model_input, list) and len(model_input) == 1 and isinstance(model_input[0], dict):
        model_input = model_input[0]
    if not isinstance(model_input, dict):
        raise GenasError('input must be {"n": <count>, "seed": <int, optional>, "format": "png" or "array"}')
    unknown = set(model_input) - {"n", "seed", "format"}
    if unknown:
        raise GenasError(f"unknown input fields {sorted(unknown)}; only 'n', 'seed' and 'format' are accepted")
    n, seed = _scalar(model_input.get("n", 1)), _scalar(model_input.get("seed"))
    limit = max_samples_per_request()
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 < n <= limit:
        raise GenasError(f"'n' must be an integer in 1..{limit}, got {n!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise GenasError(f"'seed' must be an integer, got {seed!r}")
    fmt = _scalar(model_input.get("format", "png"))
    if fmt not in ("png", "array"):
        raise GenasError(f"'format' must be 'png' or 'array', got {fmt!r}")
    return SampleRequest(int(n), None if seed is None else int(seed), fmt)


def encode_png(images: torch.Tensor) -> list[str]:
    """uint8 [n, C, H, W] → one base64 PNG string per image."""
    from PIL import Image

    out = []
    for img in images.numpy():
        buffer = io.BytesIO()
        Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)).save(buffer, format="PNG")
        out.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
    return out


def _scalar(value: Any) -> Any:
    """One value out of what MLflow's server makes of JSON (0-d arrays, one-element lists …)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    elif isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


class GenasPyfuncModel(mlflow.pyfunc.PythonModel):
    """``predict({"n": 4, "seed": 0})`` → n base64 PNG strings; with ``"format": "array"`` → uint8 [n, C, H, W].

    A generator of parameters (pdiff) answers float32 [n, P], one parameter vector per model.

    A malformed request raises MLflow's INVALID_PARAMETER_VALUE, which the model server turns
    into an HTTP 400 with the message.
    """

    def load_context(self, context) -> None:  # noqa: ANN001 - MLflow's type
        self.generator = load_generator_from_dir(Path(context.artifacts["generator"]))

    # The hint is what MLflow's REST server passes; Python callers may also pass a dict, which
    # parse_request accepts. A DataFrame hint tells MLflow to infer no schema (a schema would
    # reject the dict form) and keeps it from warning that type hints are missing.
    def predict(self, context, model_input: pd.DataFrame, params=None):  # noqa: ANN001, ANN201
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        parameters = outputs_of(self.generator) == "parameters"
        try:
            request = parse_request(model_input)
            if parameters and request.format == "png" and _asked_for_format(model_input):
                raise GenasError("this model generates parameter vectors, not images; leave 'format' out or send 'array'")
        except GenasError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
        with torch.no_grad():
            samples = self.generator.sample(request.n, seed=request.seed)
        if parameters:  # float32 [n, P]: one parameter vector per generated model
            return samples.float().numpy()
        return encode_png(samples) if request.format == "png" else samples.numpy()


def _asked_for_format(model_input: Any) -> bool:
    if hasattr(model_input, "columns"):
        return "format" in model_input.columns
    if isinstance(model_input, list) and len(model_input) == 1:
        model_input = model_input[0]
    return isinstance(model_input, dict) and "format" in model_input


def save_pyfunc_model(path: Path, generator: Generator) -> Path:
    """Write an MLflow pyfunc model folder for ``generator`` at ``path`` (must not exist)."""
    import genas

    config, tensors = generator.state()
    with tempfile.TemporaryDirectory() as tmp:
        state_dir = write_state(Path(tmp) / "generator", config, tensors)
        # No signature on purpose (see GenasPyfuncModel.predict); MLflow logs that it found none.
        pyfunc_logger = logging.getLogger("mlflow.pyfunc")
        level = pyfunc_logger.level
        pyfunc_logger.setLevel(logging.ERROR)
        try:
            mlflow.pyfunc.save_model(
                path=str(path),
                python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
                artifacts={"generator": str(state_dir)},
                pip_requirements=[f"genas=={genas.__version__}", f"torch>={torch.__version__.split('+')[0]}"],
            )
        finally:
            pyfunc_logger.setLevel(level)
    return path
