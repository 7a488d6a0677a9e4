"""Create, resume and load studies: storage URLs, directions, samplers and pruners by name.

Everything a worker needs to rebuild a trial (space, dataset, budget, objectives, sampler …)
is kept in the study's user attrs, so ``genas worker NAME`` needs only the storage URL.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

import optuna
from optuna.storages import BaseStorage

from genas.errors import GenasError, first_line
from genas.home import default_storage_url
from genas.spaces.base import GrowableSpace, Space, get_space

log = logging.getLogger(__name__)

SAMPLERS = ("growth", "tpe", "random", "cmaes", "qmc", "nsga2")
PRUNERS = ("median", "hyperband", "successive_halving", "percentile", "none")


@dataclass(frozen=True)
class StudySpec:
    """What a study searches; stored in the study's user attrs."""

    space: str
    dataset: str
    budget: str
    objectives: tuple[str, ...]
    sampler: str
    pruner: str
    seed: int
    top_k: int | None = None
    options: dict = field(default_factory=dict)  # the space's options as the user set them (--set)

    def to_attrs(self) -> dict:
        return {"space": self.space, "dataset": self.dataset, "budget": self.budget,
                "objectives": list(self.objectives), "sampler": self.sampler, "pruner": self.pruner,
                "seed": self.seed, "top_k": self.top_k, "options": dict(self.options)}

    @classmethod
    def from_attrs(cls, attrs: dict, study_name: str) -> "StudySpec":
        try:
            return cls(attrs["space"], attrs["dataset"], attrs["budget"], tuple(attrs["objectives"]),
                       attrs["sampler"], attrs["pruner"], attrs["seed"], attrs.get("top_k"),
                       dict(attrs.get("options") or {}))
        except KeyError as exc:
            raise GenasError(f"study {study_name!r} was not created by genas (no {exc.args[0]!r}); "
                             "start it with `genas search`") from exc


def default_study_name(space: str, dataset: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{space}-{dataset}").strip("-")


def open_storage(url: str | None = None) -> BaseStorage:
    """An RDB storage with heartbeats (stale trials fail and are retried once), or a journal file.

    The journal storage has no heartbeats: a killed worker's trial stays RUNNING there.
    """
    url = url or default_storage_url()
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
        from genas.search.faults import ResilientRDBStorage, RetryStaleTrial, heartbeat_settings

        interval, grace = heartbeat_settings()
        return ResilientRDBStorage(
            url,
            heartbeat_interval=interval,
            grace_period=grace,
            heartbeat_stale_trial_callback=RetryStaleTrial(max_retry=1),
            engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
        )
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/optuna raise many kinds for a bad URL
        raise GenasError(f"cannot open storage {url!r} ({first_line(exc)}); pass --storage sqlite:///PATH.db, "
                         "postgresql://USER@HOST/DB or journal:PATH") from exc


def warn_if_shared_sqlite(study: optuna.Study, url: str | None, processes: int = 1) -> None:
    """SQLite serialises writers; several workers on it stall on locks. Say so, and what to use."""
    url = url or default_storage_url()
    running = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
    if url.startswith("sqlite") and (processes > 1 or running > 0):
        log.warning("several workers on one SQLite file (%s) will wait on its locks; for workers on one "
                    "machine use --storage journal:PATH, across machines postgresql://USER@HOST/DB", url)


def build_sampler(spec: StudySpec, space: Space, resolution: int, storage_url: str | None = None,
                  study_name: str = "") -> optuna.samplers.BaseSampler:
    seed = spec.seed
    if spec.sampler == "growth":
        if not isinstance(space, GrowableSpace):
            raise GenasError(f"space {space.name} does not grow; use --sampler tpe, random, cmaes, qmc or nsga2")
        from genas.search.beam import Beam
        from genas.search.growth import GrowthSampler
        from genas.search.locks import StudyLock

        options = space.resolve_options(spec.options)
        if spec.top_k:
            options["k"] = spec.top_k
        beam = Beam(space, options, spec.budget, resolution, seed, [optuna.study.StudyDirection[d.upper()]
                                                                    for d in directions(spec)])
        return GrowthSampler(beam, StudyLock(storage_url or default_storage_url(), study_name))
    if space.samplers is not None and spec.sampler not in space.samplers:
        raise GenasError(f"space {space.name} searches with --sampler {' or '.join(space.samplers)}, "
                         f"not {spec.sampler}; leave --sampler out to use its default")
    factories = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
    }
    if spec.sampler not in factories:
        raise GenasError(f"unknown sampler {spec.sampler!r}; use one of {', '.join(SAMPLERS)}")
    return factories[spec.sampler]()


def pruning_warmup(spec: StudySpec, space: Space, resolution: int) -> int:
    """Images a trial sees before a pruner may stop it (its reports before that decide nothing).

    Steps are images seen. New layers fade in over the first half of a trial, when the score
    gets worse before it gets better: no pruning decision is taken there.
    """
    return space.trial_images(spec.budget, space.resolve_options(spec.options), resolution) // 2


def build_pruner(spec: StudySpec, space: Space, resolution: int) -> optuna.pruners.BasePruner:
    if len(spec.objectives) > 1 or spec.pruner == "none":
        # Optuna has no pruning for multi-objective studies.
        return optuna.pruners.NopPruner()
    images = space.trial_images(spec.budget, space.resolve_options(spec.options), resolution)
    warmup = pruning_warmup(spec, space, resolution)
    factories = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=warmup),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=max(1, warmup), max_resource=images),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup)),
        "percentile": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=4, n_warmup_steps=warmup),
    }
    if spec.pruner not in factories:
        raise GenasError(f"unknown pruner {spec.pruner!r}; use one of {', '.join(PRUNERS)}")
    return factories[spec.pruner]()


def validate_spec(spec: StudySpec) -> Space:
    """Check names before anything is written; return the space."""
    from genas.evaluators import check_metrics

    space = get_space(spec.space)
    space.budget(spec.budget)
    space.resolve_options(spec.options)
    if not spec.objectives:
        raise GenasError("no objective given; pass e.g. --objective swd or --objective swd,fid_digitnet")
    image_metrics = image_objectives(spec, space)
    if image_metrics and not space.scores_images:
        raise GenasError(f"space {space.name} is scored on {', '.join(space.own_metrics)}, not "
                         f"{', '.join(image_metrics)}; pass e.g. --objective {space.default_objectives[0]} "
                         "(comma-separated for several)")
    try:
        check_metrics(image_metrics or ["swd"])
    except GenasError as exc:
        if not space.own_metrics:
            raise
        raise GenasError(f"{exc}; space {space.name} also scores {', '.join(space.own_metrics)}") from None
    if spec.sampler not in SAMPLERS:
        raise GenasError(f"unknown sampler {spec.sampler!r}; use one of {', '.join(SAMPLERS)}")
    if spec.pruner not in PRUNERS:
        raise GenasError(f"unknown pruner {spec.pruner!r}; use one of {', '.join(PRUNERS)}")
    if spec.sampler == "growth" and not isinstance(space, GrowableSpace):
        raise GenasError(f"space {space.name} does not grow; use --sampler tpe, random, cmaes, qmc or nsga2")
    if space.samplers is not None and spec.sampler not in space.samplers:
        raise GenasError(f"space {space.name} searches with --sampler {' or '.join(space.samplers)}, "
                         f"not {spec.sampler}; leave --sampler out to use its default")
    return space


def image_objectives(spec: StudySpec, space: Space) -> list[str]:
    """The objectives the image evaluators compute (the rest are the space's own)."""
    return [o for o in spec.objectives if o not in space.own_metrics]


def directions(spec: StudySpec) -> list[str]:
    space = get_space(spec.space)
    return [space.direction(o) for o in spec.objectives]


BUDGET_VALUES_ATTR = "budget_values"


def budget_values(space: Space, budget: str) -> dict:
    """The budget's values as the study stores them (JSON: tuples become lists)."""
    return json.loads(json.dumps(space.budget(budget), sort_keys=True, default=str))


def check_budget_unchanged(study: optuna.Study, spec: StudySpec) -> None:
    """Refuse to run more trials of a study whose budget's values have changed since it was created.

    A budget is a name for values (images per candidate, widths, finishing images …) that a
    later genas may change; new trials on new values would be ranked against old ones. A study
    created before genas stored the values is not checked.
    """
    stored = study.user_attrs.get(BUDGET_VALUES_ATTR)
    if stored is None:
        return
    now = budget_values(get_space(spec.space), spec.budget)
    changed = sorted(k for k in stored.keys() | now.keys() if stored.get(k) != now.get(k))
    if changed:
        shown = "; ".join(f"{k} {_value(stored.get(k))} -> {_value(now.get(k))}" for k in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise GenasError(f"study {study.study_name!r} was created when budget {spec.budget!r} had other values "
                         f"({shown}{more}); run it with the genas version that created it, or pass another "
                         "--study-name to start it again on today's values")


def _value(v: object) -> str:
    return "unset" if v is None else ",".join(map(str, v)) if isinstance(v, list) else str(v)


RESUME_FLAGS = {"dataset": "--dataset", "budget": "--budget", "objectives": "--objective", "seed": "--seed",
                "top_k": "--top-k"}


def create_or_resume(name: str, spec: StudySpec, storage: BaseStorage, *, check_budget: bool = True) -> optuna.Study:
    """Create the study, or resume it when the stored spec agrees with this one.

    A resumed study runs on its stored settings; a different dataset, budget, seed, objective,
    top-k or option would mix new settings into old trials, so it is refused, and so is a budget
    whose values changed since the study was created (:func:`check_budget_unchanged`; with
    ``check_budget`` False the caller reads a finished study and leaves the check to
    :func:`genas.search.worker.run_worker`, which makes it before any new trial).
    """
    if name in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}:
        study = optuna.load_study(study_name=name, storage=storage)
        stored = StudySpec.from_attrs(study.user_attrs, name)
        if stored.space != spec.space:
            raise GenasError(f"study {name!r} searches {stored.space}, not {spec.space}; pass another --study-name")
        for key, flag in RESUME_FLAGS.items():
            old, new = getattr(stored, key), getattr(spec, key)
            if old != new and not (key == "top_k" and new is None):
                shown = ",".join(old) if isinstance(old, tuple) else old
                raise GenasError(f"study {name!r} was created with {flag} {shown}, not "
                                 f"{','.join(new) if isinstance(new, tuple) else new}; resume it with {flag} {shown} "
                                 "(or leave the flag out), or pass another --study-name")
        if spec.options and stored.options != spec.options:
            raise GenasError(f"study {name!r} was created with options {stored.options or 'none'}, not {spec.options}; "
                             "leave --set out to resume it, or pass another --study-name")
        if check_budget:
            check_budget_unchanged(study, stored)
        return study
    study = optuna.create_study(study_name=name, storage=storage,
                                directions=directions(spec))
    study.set_metric_names(list(spec.objectives))
    for key, value in spec.to_attrs().items():
        study.set_user_attr(key, value)
    study.set_user_attr(BUDGET_VALUES_ATTR, budget_values(get_space(spec.space), spec.budget))
    for params in get_space(spec.space).initial_trials(spec.budget):
        study.enqueue_trial(params, user_attrs={"initial": True})
    # The MLflow parent run is made here, by the one process creating the study, so that workers
    # starting together never each make their own.
    from genas.search.worker import study_parent_run

    study_parent_run(study, spec)
    return study


def load_study(name: str, storage: BaseStorage) -> tuple[optuna.Study, StudySpec]:
    """A study genas created; GenasError naming the existing studies when it is not there."""
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    if name not in names:
        known = ", ".join(names) if names else "none yet; start one with `genas search SPACE`"
        raise GenasError(f"no study named {name!r} in this storage (studies: {known})")
    study = optuna.load_study(study_name=name, storage=storage)
    return study, StudySpec.from_attrs(study.user_attrs, name)


def attach_search(study: optuna.Study, spec: StudySpec, space: Space, resolution: int,
                  storage_url: str | None = None) -> optuna.Study:
    """Reload the study with the sampler and pruner its spec names (both are per-process objects)."""
    return optuna.load_study(study_name=study.study_name, storage=open_storage(storage_url),
                             sampler=build_sampler(spec, space, resolution, storage_url, study.study_name),
                             pruner=build_pruner(spec, space, resolution))
