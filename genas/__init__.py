"""genas: architecture and hyperparameter search for generative models.

Public API: :func:`load` pulls a trained generator from MLflow (``models:/genas-<study>@champion``,
``runs:/<id>/model`` or a local model folder).
"""
__version__ = "0.1.0"


def load(model_uri: str):
    """Load a genas generator from a model URI; ``.sample(n, seed)`` gives uint8 NCHW images.

    A pdiff model gives parameter vectors instead, and ``.sample_models(n, seed)`` ready classifiers.
    """
    from genas.registry.model import load_generator

    return load_generator(model_uri)


__all__ = ["load", "__version__"]
