"""One Optuna trial, top to bottom: suggest → train → evaluate → log to MLflow → return the objective.

A trial that raises is recorded as failed with its reason (Optuna user attr ``fail_reason``,
MLflow tag ``genas.fail_reason``, run status FAILED) and the study goes on; a pruned trial's
run ends KILLED with ``genas.state=PRUNED``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import optuna
import torch
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

from genas.data import Dataset
from genas.errors import GenasError
from genas.evaluators import evaluate
from genas.images import save_grid
from genas.registry.model import load_generator_from_dir, read_state, save_pyfunc_model, write_state
from genas.registry.tracking import MODEL_ARTIFACT, RUN_ID_ATTR, STATE_ARTIFACT, RunLogger, start_run
from genas.report.labels import short
from genas.search.beam import (ACTION_ATTR, FINALIST_ATTR, PAIRED_DRAWS, PAIRED_DRAWS_ATTR, PARENT_ATTR,
                               PARENT_VALUES_ATTR)
from genas.search.study import StudySpec, pruning_warmup
from genas.spaces.base import Generator, Space, Tensors, TrialContext, outputs_of

log = logging.getLogger(__name__)

FAIL_REASON_ATTR = "fail_reason"
WORKER_ATTR = "worker"
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"  # which process ran a trial
GRID_SAMPLES = 64
PAIRED_DRAW_STRIDE = 7_919  # latent seeds of the finalist's extra paired draws: seed + k * this


def trial_seed(study_seed: int, number: int) -> int:
    """The seed trial ``number`` of a study with ``study_seed`` trains and is scored with."""
    return study_seed * 100_003 + number


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise GenasError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GenasError(f"device {name} asked for but no CUDA GPU is visible; use --device cpu or auto")
    return device


def trial_run(study: optuna.Study, number: int) -> RunLogger:
    """The MLflow run of trial ``number``; GenasError when it has none."""
    matches = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    run_id = matches[0].user_attrs.get(RUN_ID_ATTR) if matches else None
    if run_id is None:
        raise GenasError(f"parent trial {number} has no MLflow run; its lineage cannot be continued")
    return RunLogger(run_id)


@dataclass
class Progress:
    """Hooks for a progress display (the CLI's); all optional."""

    trial_started: Callable[[int, str], None] = lambda number, label: None
    images: Callable[[int, int], None] = lambda done, total: None
    trial_finished: Callable[[optuna.trial.FrozenTrial | None], None] = lambda trial: None
    metrics: Callable[[dict[str, float]], None] = lambda metrics: None


@dataclass
class Objective:
    study_name: str
    spec: StudySpec
    space: Space
    dataset: Dataset
    device: torch.device
    experiment_id: str
    parent_run_id: str | None
    progress: Progress = field(default_factory=Progress)
    current_trial: int | None = None  # the trial running now, for the worker's stop handling
    last_trial: optuna.Trial | None = None  # the trial started last, and its values once it has them:
    last_values: list[float] | None = None  # what the worker settles when the storage fails mid-trial
    spent: dict[str, float] = field(default_factory=dict)  # seconds per phase of the current trial
    images_done: int = 0  # training images the current trial has seen so far

    @contextlib.contextmanager
    def _timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spent[phase] = self.spent.get(phase, 0.0) + time.perf_counter() - start

    @property
    def budget(self) -> dict:
        return self.space.budget(self.spec.budget)

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        self.current_trial, self.last_trial, self.last_values = trial.number, trial, None
        self.spent = {}
        self.images_done = 0
        started = time.perf_counter()
        trial.set_user_attr(WORKER_ATTR, WORKER_ID)
        claim = getattr(trial.study.sampler, "claim", None)
        if claim is not None:  # a planning sampler (dggan's beam) gives the trial its candidate first
            try:
                claim(trial)
            except GenasError as exc:
                trial.set_user_attr(FAIL_REASON_ATTR, str(exc)[:2000])
                self.current_trial = None
                raise
        attrs = trial.user_attrs
        tags = {"genas.study": self.study_name, "genas.space": self.space.name,
                "genas.trial": str(trial.number), "genas.dataset": self.spec.dataset,
                "genas.budget": self.spec.budget}
        if PARENT_ATTR in attrs:
            tags["genas.parent"] = "root" if attrs[PARENT_ATTR] is None else str(attrs[PARENT_ATTR])
            tags["genas.action"] = str(attrs.get(ACTION_ATTR, ""))
        name = f"trial-{trial.number}" + (f" · {tags['genas.action']}" if "genas.action" in tags else "")
        tags["genas.worker"] = WORKER_ID
        run = RunLogger(start_run(self.experiment_id, name, tags, self.parent_run_id))
        trial.set_user_attr(RUN_ID_ATTR, run.run_id)
        self.progress.trial_started(trial.number, name)
        try:
            values = self._run(trial, run)
        except optuna.TrialPruned:
            self.current_trial = None
            run.tags({"genas.state": "PRUNED"})
            run.finish("KILLED")
            raise
        except BaseException as exc:
            reason = f"{type(exc).__name__}: {exc}".strip()[:2000]
            if isinstance(exc, KeyboardInterrupt):
                reason = f"interrupted ({exc or 'SIGINT'}): the worker was stopped; the trial is queued again"
            with contextlib.suppress(Exception):  # the storage may be what failed
                trial.set_user_attr(FAIL_REASON_ATTR, reason)
            run.fail(reason, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            log.warning("trial %d failed: %s", trial.number, reason)
            if not isinstance(exc, KeyboardInterrupt):
                self.current_trial = None  # only an interrupted trial is queued again
            raise
        run.metrics(self._time_split(time.perf_counter() - started), step=0)
        run.tags({"genas.state": "COMPLETE"})
        run.finish("FINISHED")
        self.current_trial, self.last_values = None, values
        return values[0] if len(values) == 1 else values

    def _run(self, trial: optuna.Trial, run: RunLogger) -> list[float]:
        seed = trial_seed(self.spec.seed, trial.number)
        ctx = self._context(trial, run, seed)
        config = self.space.suggest(trial, ctx)
        run.params(config)
        if PARENT_ATTR not in trial.user_attrs:  # no growth action to name the run after: its params
            run.tags({MLFLOW_RUN_NAME: f"trial-{trial.number} · " + " ".join(
                f"{k}={short(v)}" for k, v in trial.params.items())})
        with self._timed("train"):
            generator = self.space.train(config, ctx)
        if "lineage_images" not in trial.user_attrs:  # a family that does not grow: its own images
            ctx.set_attr("lineage_images", self.images_done)

        names = self.space.final_metrics(self.spec.objectives, self.dataset)
        own = [m for m in names if m in self.space.own_metrics]
        images = [m for m in names if m not in own]
        with self._timed("eval"):
            metrics, grid, counts = self._score(generator, own, images, ctx, seed, grid_samples=GRID_SAMPLES)
        run.params(counts)  # which protocol made the numbers: FID-1k is not FID-10k
        run.metrics(metrics, step=self.images_done)
        if grid is not None:
            run.image(grid, "samples", self.images_done)
        missing = [o for o in self.spec.objectives if o not in metrics]
        if missing:
            raise GenasError(f"space {self.space.name} did not compute {', '.join(missing)}; "
                             f"choose objectives it scores ({', '.join(self.space.default_objectives)} by default)")
        values = [metrics[o] for o in self.spec.objectives]
        if not all(math.isfinite(v) for v in values):
            raise GenasError(f"objective is not finite ({dict(zip(self.spec.objectives, values))})")
        for key, value in metrics.items():
            trial.set_user_attr(key, value)
        if trial.user_attrs.get(FINALIST_ATTR):
            with self._timed("eval"):
                self._score_parent(trial, run, generator, values[0], own, images, ctx, seed)
        self._log_model(run, generator, grid, config)
        return values

    def _score(self, generator: Generator, own: list[str], images: list[str], ctx: TrialContext, seed: int,
               grid_samples: int = 0) -> tuple[dict[str, float], torch.Tensor | None, dict[str, int]]:
        """The final metrics of ``generator`` on the latent draw ``seed``, the first ``grid_samples``
        of its samples (an image generator is looked at, scored on images or not) and the counts
        of images behind each metric."""
        metrics = self.space.score(generator, own, ctx) if own else {}
        if outputs_of(generator) != "images":
            return metrics, None, {}
        budget = self.budget
        feature_fakes, swd_fakes = budget["eval_samples"], budget.get("swd_samples", budget["eval_samples"])
        needed = max([grid_samples] + [swd_fakes if m == "swd" else feature_fakes for m in images])
        fake = generator.sample(needed, seed=seed)
        counts: dict[str, int] = {}
        if images:
            scores = evaluate(fake, self.dataset, images, device=self.device, seed=self.spec.seed,
                              swd_fakes=swd_fakes, feature_fakes=feature_fakes)
            metrics.update(scores)
            counts = scores.counts
        return metrics, (fake[:grid_samples] if grid_samples else None), counts

    def _score_parent(self, trial: optuna.Trial, run: RunLogger, finalist: Generator, finalist_value: float,
                      own: list[str], images: list[str], ctx: TrialContext, seed: int) -> None:
        """Score the finalist's parent on the finalist's own draw (latent noise, real images, SWD
        directions), recorded as ``parent_values``, and both of them on ``PAIRED_DRAWS - 1`` latent
        draws more (first objective only), recorded with the first as ``paired_draws``: a paired
        comparison of the two. Their own scores carry the noise of two separate draws, comparable
        to what the finishing images change, and one paired draw still leaves some of it."""
        parent_number = trial.user_attrs[PARENT_ATTR]
        first = self.spec.objectives[0]
        first_own, first_images = ([first], []) if first in own else ([], [first])
        try:
            with tempfile.TemporaryDirectory() as tmp:
                parent = load_generator_from_dir(trial_run(trial.study, parent_number).download(MODEL_ARTIFACT, Path(tmp)))
            scores, _, _ = self._score(parent, own, images, ctx, seed)
            values = [scores[o] for o in self.spec.objectives]
            draws = [[finalist_value, values[0]]]
            for draw in range(1, PAIRED_DRAWS):
                draw_seed = seed + draw * PAIRED_DRAW_STRIDE
                draws.append([self._score(model, first_own, first_images, ctx, draw_seed)[0][first]
                              for model in (finalist, parent)])
        except Exception as exc:  # noqa: BLE001 - the finalist keeps its own score; losing it would lose its images
            log.warning("the finalist's parent (trial %d) could not be scored beside it (%s); the champion is "
                        "chosen on their separate scores", parent_number, exc)
            return
        trial.set_user_attr(PARENT_VALUES_ATTR, values)
        trial.set_user_attr(PAIRED_DRAWS_ATTR, draws)
        run.metrics({f"parent_{o}": v for o, v in zip(self.spec.objectives, values)}, step=self.images_done)

    def _time_split(self, total: float) -> dict[str, float]:
        """Where the trial's wall time went: training, evaluation, and genas itself (the rest).

        genas's share is everything but the space's own training steps and the metrics: MLflow
        logging, checkpoints out and in, the model, the sampler and the storage.
        """
        s = self.spent
        inside_train = s.get("quick_eval", 0) + s.get("report_log", 0) + s.get("parent_load", 0) + s.get("state_save", 0)
        training = max(s.get("train", 0) - inside_train, 0.0)
        evaluation = s.get("eval", 0) + s.get("quick_eval", 0)
        framework = max(total - training - evaluation, 0.0)
        return {"trial_seconds": total, "seconds_training": training, "seconds_evaluation": evaluation,
                "seconds_framework": framework, "framework_share": framework / total if total > 0 else 0.0}

    def _context(self, trial: optuna.Trial, run: RunLogger, seed: int) -> TrialContext:
        budget = self.budget
        single = len(self.spec.objectives) == 1
        pruning_key = f"{self.spec.objectives[0]}_quick" if single else None
        # The pruner reads the objective's own kind: an FID study is pruned on a quick FID (the real
        # side is the cached standard set, so it costs the fakes' features only), never on SWD. It
        # is computed only where the pruner can act: Inception on a CPU is the slow part of a trial.
        objective = self.spec.objectives[0]
        prunes_on_own_kind = (single and self.spec.pruner != "none" and objective != "swd"
                              and objective not in self.space.own_metrics)
        warmup = pruning_warmup(self.spec, self.space, self.dataset.resolution) if prunes_on_own_kind else 0
        quick_counts_logged: set[str] = set()

        grids: list[torch.Tensor] = []  # the latest quick-eval samples, logged with the next report

        def report(step: int, metrics: dict[str, float]) -> None:
            self.progress.metrics(metrics)
            with self._timed("report_log"):
                run.metrics(metrics, step=step)
                if grids:
                    run.image(grids.pop(), "samples", step)
                prune = False
                if pruning_key in metrics and math.isfinite(metrics[pruning_key]):
                    trial.report(metrics[pruning_key], step)
                    prune = trial.should_prune()
            if prune:
                raise optuna.TrialPruned(f"pruned at {step} images ({pruning_key}={metrics[pruning_key]:.3f})")

        def quick_eval(generator: Generator) -> dict[str, float]:
            if not self.space.scores_images or outputs_of(generator) != "images":
                return {}
            n = budget["quick_eval_samples"]
            with self._timed("quick_eval"):
                fake = generator.sample(n, seed=seed)
                grids[:] = [fake[:GRID_SAMPLES]]
                names = ["swd"] + ([objective] if prunes_on_own_kind and self.images_done >= warmup else [])
                scores = evaluate(fake, self.dataset, names, device=self.device, seed=self.spec.seed)
            counts = {"{}_quick_n_{}".format(*k.rsplit("_n_", 1)): v for k, v in scores.counts.items()}
            if counts.keys() - quick_counts_logged:
                run.params({k: v for k, v in counts.items() if k not in quick_counts_logged})
                quick_counts_logged.update(counts)
            return {f"{name}_quick": scores[name] for name in names}

        def parent_state() -> tuple[dict, Tensors] | None:
            parent = trial.user_attrs.get(PARENT_ATTR)
            with self._timed("parent_load"):
                return None if parent is None else self.load_trial_state(trial.study, parent)

        def save_state(config: dict, tensors: Tensors) -> None:
            with self._timed("state_save"), tempfile.TemporaryDirectory() as tmp:
                run.artifacts(write_state(Path(tmp) / STATE_ARTIFACT, config, tensors), STATE_ARTIFACT)

        def set_attr(key: str, value: object) -> None:
            trial.set_user_attr(key, value)
            run.tags({f"genas.{key}": value})

        def advance(done: int, total: int) -> None:
            self.images_done = done
            self.progress.images(done, total)

        return TrialContext(dataset=self.dataset, budget=self.spec.budget, device=self.device, seed=seed,
                            trial=trial, options=self.space.resolve_options(self.spec.options),
                            reporter=report, quick_evaluator=quick_eval, parent_loader=parent_state,
                            state_saver=save_state, attr_setter=set_attr, progress=advance)

    @staticmethod
    def load_trial_state(study: optuna.Study, number: int) -> tuple[dict, Tensors]:
        """The training state a finished trial saved, read back from its MLflow run's artifacts."""
        with tempfile.TemporaryDirectory() as tmp:
            return read_state(trial_run(study, number).download(STATE_ARTIFACT, Path(tmp)))

    def _log_model(self, run: RunLogger, generator: Generator, grid: torch.Tensor | None, config: dict) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            if grid is not None:
                run.artifact(save_grid(grid, Path(tmp) / "samples.png"))
            config_file = Path(tmp) / "config.json"
            config_file.write_text(json.dumps({"space": self.space.name, "config": config,
                                               "generator": generator.state()[0]}, indent=2, default=str))
            run.artifact(config_file)
            model_dir = save_pyfunc_model(Path(tmp) / MODEL_ARTIFACT, generator)
            run.artifacts(model_dir, MODEL_ARTIFACT)
