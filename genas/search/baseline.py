"""The no-search reference: the textbook DCGAN, as published, on the champion's own images.

A search is worth running when its champion beats what its user would write by hand. After a
search of an image GAN family, genas trains the ``dcgan`` space's trial 0 (Radford et al.'s
configuration, nothing tuned) on the same dataset and the same number of training images as the
champion (its whole lineage, for dggan), scores it the same way, and shows the two side by side
in the CLI, the study report and the study's MLflow parent run. The reference is an ordinary
study in the same storage, ``dcgan-ref-<dataset>-<images>img-seed<seed>``, trained once and
reused by every study that asks for the same one.
"""
from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from genas.errors import GenasError
from genas.search.study import StudySpec, create_or_resume, default_study_name, open_storage
from genas.spaces.base import Space, get_space

log = logging.getLogger(__name__)

REFERENCE_SPACE = "dcgan"
BASELINE_ATTR = "baseline"  # on the searched study: what the reference scored, and where it is


def applies(space: Space, spec: StudySpec) -> bool:
    """Image GAN families scored on image metrics, but not the reference itself."""
    from genas.spaces.generators import LatentGenerator

    return (space.name != REFERENCE_SPACE and issubclass(space.generator_cls, LatentGenerator)
            and not any(o in space.own_metrics for o in spec.objectives))


def reference_study_name(spec: StudySpec, images: int) -> str:
    scored = "" if spec.objectives == ("swd",) else "-" + "-".join(spec.objectives)
    return default_study_name(REFERENCE_SPACE, f"ref-{spec.dataset}-{images}img-seed{spec.seed}{scored}")


def reference(spec: StudySpec, images: int, storage_url: str | None, device: str = "auto") -> FrozenTrial:
    """The reference trial for ``images`` training images: read from the storage, or trained now."""
    from genas.search.worker import run_worker

    ref_spec = StudySpec(REFERENCE_SPACE, spec.dataset, spec.budget, spec.objectives, "tpe", "none", spec.seed,
                         None, {"images": str(images)})
    # A trained reference stands after an upgrade that changed dcgan's budget; a new one is
    # trained only through run_worker, which refuses a study begun on other budget values.
    study = create_or_resume(reference_study_name(spec, images), ref_spec, open_storage(storage_url),
                             check_budget=False)
    for _ in range(2):  # the paper's configuration is trial 0; queued again if a first try failed
        done = _paper_trials(study, (TrialState.COMPLETE,))
        if done:
            return done[0]
        if not _paper_trials(study, (TrialState.WAITING,)):
            for params in get_space(REFERENCE_SPACE).initial_trials(spec.budget):
                study.enqueue_trial(params, user_attrs={"initial": True})
        run_worker(study, ref_spec, n_trials=1, timeout=None, device=device, storage_url=storage_url)
    failed = _paper_trials(study, (TrialState.FAIL,))
    reason = failed[-1].user_attrs.get("fail_reason", "no reason recorded") if failed else "it did not run"
    raise GenasError(f"the no-search reference (dcgan, the paper's configuration) failed: {reason}")


def _paper_trials(study: optuna.Study, states: tuple[TrialState, ...]) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=states) if t.user_attrs.get("initial")]


def compare(study: optuna.Study, spec: StudySpec, champion: FrozenTrial, ref: FrozenTrial,
            ref_study: str) -> dict[str, Any]:
    """Record the comparison on the searched study (user attr ``baseline``) and return it."""
    record = {"study": ref_study, "trial": ref.number, "run_id": ref.user_attrs.get("mlflow_run_id"),
              "images": ref.user_attrs.get("lineage_images"), "champion": champion.number,
              "champion_images": champion.user_attrs.get("lineage_images"),
              "values": dict(zip(spec.objectives, ref.values)),
              "champion_values": dict(zip(spec.objectives, champion.values))}
    study.set_user_attr(BASELINE_ATTR, record)
    return record


def describe(record: dict[str, Any], directions: list[str]) -> str:
    """``swd 48.10 for dcgan (paper config, 20,000 images) vs 27.31 for the champion: 43% lower``."""
    parts = []
    for (name, ref), direction in zip(record["values"].items(), directions):
        mine = record["champion_values"][name]
        better = mine < ref if direction == "minimize" else mine > ref
        change = abs(mine - ref) / abs(ref) * 100 if ref else 0.0
        verdict = f"{change:.0f}% {'lower' if mine < ref else 'higher'}, {'better' if better else 'worse'}"
        parts.append(f"{name} {mine:.2f} for the champion vs {ref:.2f} for the no-search dcgan ({verdict})")
    return (f"at {record['champion_images']:,} training images: " + "; ".join(parts)
            if record.get("champion_images") else "; ".join(parts))
