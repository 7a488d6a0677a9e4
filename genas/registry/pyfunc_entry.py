"""MLflow "models from code" entry point: the logged model is this file plus safetensors + JSON."""
import mlflow.models

from genas.registry.model import GenasPyfuncModel

mlflow.models.set_model(GenasPyfuncModel())
