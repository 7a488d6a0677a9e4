"""Register a study's best trial in the MLflow Model Registry and point an alias at it."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import optuna
from mlflow.exceptions import MlflowException
from optuna.study import StudyDirection
from optuna.trial import TrialState

from genas.errors import GenasError
from genas.registry.tracking import MODEL_ARTIFACT, RUN_ID_ATTR, client
from genas.search.beam import FINALIST_ATTR, PAIRED_DRAWS_ATTR, PARENT_ATTR, PARENT_VALUES_ATTR
from genas.search.ranking import rank_trials

log = logging.getLogger(__name__)


def registered_name(study_name: str) -> str:
    return f"genas-{study_name}"


def eligible(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a complete trial may be a champion: a grown model only at the dataset's resolution."""
    return trial.state == TrialState.COMPLETE and trial.user_attrs.get("full_resolution", True) is not False


def paired_draws(finalist: optuna.trial.FrozenTrial) -> list[list[float]]:
    """A finalist's ``[[finalist, parent], ...]`` on the first objective, one pair per paired draw;
    a trial from before the extra draws has only its own draw (``parent_values``); [] without any."""
    paired = finalist.user_attrs.get(PARENT_VALUES_ATTR)
    if not paired:
        return []
    return finalist.user_attrs.get(PAIRED_DRAWS_ATTR) or [[finalist.values[0], paired[0]]]


def paired_losers(trials: Sequence[optuna.trial.FrozenTrial], directions: Sequence[StudyDirection]) -> set[int]:
    """Of each finalist and its parent, the one that lost their paired comparison, on the first
    objective: the parent displaces the finalist only when it scores better on every paired draw
    (``paired_draws``: the finalist's own draw and ``PAIRED_DRAWS - 1`` more); a split or a tie
    keeps the finalist, whose extra images are the point of it. Trials from before the extra
    draws hold only the finalist's own draw (``parent_values``). Their own scores come from
    separate draws, whose sampling noise is comparable to what the finishing images change."""
    sign = 1.0 if directions[0] == StudyDirection.MINIMIZE else -1.0
    losers: set[int] = set()
    for t in trials:
        if t.state != TrialState.COMPLETE or not t.user_attrs.get(FINALIST_ATTR):
            continue
        draws = paired_draws(t)
        if not draws:
            continue
        parent_wins = all(sign * parent < sign * finalist for finalist, parent in draws)
        losers.add(t.number if parent_wins else t.user_attrs[PARENT_ATTR])
    return losers


def champion_candidates(trials: Sequence[optuna.trial.FrozenTrial],
                        directions: Sequence[StudyDirection]) -> list[optuna.trial.FrozenTrial]:
    """The trials that may be registered as champion: complete, eligible, and no paired loser."""
    losers = paired_losers(trials, directions)
    return [t for t in trials if eligible(t) and t.number not in losers]


def champion_number(trials: Sequence[optuna.trial.FrozenTrial], directions: Sequence[StudyDirection]) -> int | None:
    """The trial :func:`best_trial` registers, from a study's trials; None while there is none."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    candidates = champion_candidates(complete, directions)
    return rank_trials(candidates, directions)[0].number if candidates else None


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The single best champion candidate; for several objectives, the Pareto trial best on the
    first (ties: earliest)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise GenasError(f"study {study.study_name!r} has no complete trial to register yet; "
                         "run more trials (`genas worker`) first")
    candidates = champion_candidates(complete, study.directions)
    if not candidates:
        raise GenasError(f"study {study.study_name!r} has no complete trial at the dataset's resolution yet (its "
                         f"best grow as far as {max(t.user_attrs.get('resolution', 0) for t in complete)} px); "
                         "run more trials (`genas worker`) so that the beam reaches it")
    return rank_trials(candidates, study.directions)[0]


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    alias: str
    trial: int
    run_id: str


def promote(study: optuna.Study, alias: str = "champion") -> Promotion:
    """Register the best trial's model (once per run) and move ``alias`` to that version."""
    trial = best_trial(study)
    run_id = trial.user_attrs.get(RUN_ID_ATTR)
    if run_id is None:
        raise GenasError(f"best trial {trial.number} has no MLflow run to register")
    c = client()
    name = registered_name(study.study_name)
    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, tags={"genas.study": study.study_name},
                                  description=f"Generators found by the genas study {study.study_name}")
    existing = [v for v in c.search_model_versions(f"name='{name}'") if v.run_id == run_id]
    if existing:
        version = existing[0]
    else:
        source = f"{c.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
        version = c.create_model_version(name, source, run_id=run_id,
                                         tags={"genas.trial": str(trial.number)})
    c.set_registered_model_alias(name, alias, version.version)
    log.info("registered %s version %s (trial %d) as @%s", name, version.version, trial.number, alias)
    return Promotion(name, str(version.version), alias, trial.number, run_id)
