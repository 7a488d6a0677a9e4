"""How a trial is described to people, the same in the CLI tables and the report."""
from __future__ import annotations

from optuna.trial import FrozenTrial


def short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def parent_label(trial: FrozenTrial) -> str:
    """``root``, the parent's trial number, or empty outside growth spaces."""
    if "parent" not in trial.user_attrs:
        return ""
    return "root" if trial.user_attrs["parent"] is None else str(trial.user_attrs["parent"])


def detail(trial: FrozenTrial) -> str:
    """The growth action, or the sampled params for the other spaces."""
    return trial.user_attrs.get("action") or ", ".join(f"{k}={short(v)}" for k, v in trial.params.items())


def generation_label(trial: FrozenTrial) -> str:
    """The beam generation of a growth trial, or empty."""
    generation = trial.user_attrs.get("generation")
    return "" if generation is None else str(generation)


def images_label(trial: FrozenTrial) -> str:
    """The training images behind the trial's model (its whole lineage for dggan), or empty."""
    images = trial.user_attrs.get("lineage_images")
    return "" if images is None else f"{images:,}"
