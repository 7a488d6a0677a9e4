"""A study's report: leaderboard, Optuna's plots, the growth tree and the best sample grids.

:func:`build_report` gathers it once; :func:`write_html` makes one self-contained page of it
(``genas report``), and :func:`log_study_report` attaches it to the study's parent MLflow run,
where the MLflow UI shows it next to the trials.
"""
from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from genas.errors import GenasError
from genas.report.ablation import SwitchEffect, switch_effects
from genas.report.lineage import draw_lineage
from genas.report.page import write_html
from genas.search.study import StudySpec
from genas.spaces.base import get_space

log = logging.getLogger(__name__)

REPORT_ARTIFACT = "report"
BEST_SAMPLES = 3


@dataclass
class ReportParts:
    study: str
    spec: StudySpec
    trials: list[FrozenTrial]
    ranked: list[FrozenTrial]
    champion: int | None
    figures: dict[str, bytes] = field(default_factory=dict)  # file stem → PNG bytes
    samples: dict[int, bytes] = field(default_factory=dict)  # trial number → samples.png bytes
    switches: list[SwitchEffect] = field(default_factory=list)  # modules on / off
    directions: list[str] = field(default_factory=list)  # "minimize" / "maximize" per objective
    baseline: dict | None = None  # the no-search reference's scores (search/baseline.py), when trained
    baseline_grid: bytes | None = None


def build_report(study: optuna.Study, spec: StudySpec, best_samples: int = BEST_SAMPLES) -> ReportParts:
    from genas.registry.promote import champion_number
    from genas.search.ranking import rank_trials

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    ranked = rank_trials(complete, study.directions) if complete else []
    champion = champion_number(complete, study.directions)
    parts = ReportParts(study.study_name, spec, trials, ranked, champion,
                        switches=switch_effects(trials, study.directions[0]),
                        directions=[d.name.lower() for d in study.directions])
    lineage = draw_lineage(trials, get_space(spec.space), spec.objectives[0], champion)
    if lineage is not None:
        parts.figures["lineage"] = lineage
    parts.figures.update(optuna_plots(study, spec))
    if get_space(spec.space).scores_images:  # a family that generates classifiers has no grids
        parts.samples = sample_grids(ranked[:best_samples])
    from genas.search.baseline import BASELINE_ATTR

    parts.baseline = study.user_attrs.get(BASELINE_ATTR)
    if parts.baseline and parts.baseline.get("run_id"):
        parts.baseline_grid = _run_grid(parts.baseline["run_id"], f"the baseline {parts.baseline['study']}")
    return parts


def optuna_plots(study: optuna.Study, spec: StudySpec) -> dict[str, bytes]:
    """Optuna's own matplotlib plots; a plot that cannot be drawn yet (too few trials) is left out."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    multi = len(spec.objectives) > 1
    first = spec.objectives[0]
    plots = {"optimization_history": lambda: ovm.plot_optimization_history(
                 study, target=(lambda t: t.values[0]) if multi else None, target_name=first),
             "param_importances": lambda: ovm.plot_param_importances(
                 study, target=(lambda t: t.values[0]) if multi else None, target_name=first)}
    if multi:
        plots["pareto_front"] = lambda: ovm.plot_pareto_front(study, target_names=list(spec.objectives))
    out: dict[str, bytes] = {}
    for name, plot in plots.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna.visualization.matplotlib is flagged experimental
            try:
                ax = plot()
            except Exception as exc:  # noqa: BLE001 - too few trials, no variance …: the plot is left out
                log.info("plot %s left out: %s", name, exc)
                continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(7, 4.2)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        out[name] = buffer.getvalue()
    return out


def sample_grids(trials: list[FrozenTrial]) -> dict[int, bytes]:
    """The ``samples.png`` each trial logged to its MLflow run."""
    from genas.registry.tracking import RUN_ID_ATTR

    out: dict[int, bytes] = {}
    for t in trials:
        run_id = t.user_attrs.get(RUN_ID_ATTR)
        grid = _run_grid(run_id, f"trial {t.number}") if run_id is not None else None
        if grid is not None:
            out[t.number] = grid
    return out


def _run_grid(run_id: str, what: str) -> bytes | None:
    from genas.registry.tracking import RunLogger

    with tempfile.TemporaryDirectory() as tmp:
        try:
            return RunLogger(run_id).download("samples.png", Path(tmp)).read_bytes()
        except Exception as exc:  # noqa: BLE001 - a missing artifact leaves the grid out, not the report
            log.warning("%s: no sample grid (%s)", what, exc)
            return None


def log_study_report(study: optuna.Study, spec: StudySpec, parts: ReportParts | None = None) -> None:
    """Attach the plots, the growth tree and the HTML page to the study's parent MLflow run."""
    from genas.registry.tracking import RunLogger
    from genas.search.worker import PARENT_RUN_ATTR

    run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    if run_id is None:
        raise GenasError(f"study {study.study_name!r} has no MLflow parent run yet; run a trial first")
    parts = parts or build_report(study, spec)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / REPORT_ARTIFACT
        folder.mkdir()
        for name, png in parts.figures.items():
            (folder / f"{name}.png").write_bytes(png)
        write_html(parts, folder / "report.html")
        run = RunLogger(run_id)
        run.artifacts(folder, REPORT_ARTIFACT)
        if parts.champion is not None:
            run.tags({"genas.champion_trial": str(parts.champion)})
        counts = {s.name.lower(): sum(t.state == s for t in parts.trials) for s in TrialState}
        run.metrics({f"trials_{k}": v for k, v in counts.items() if v}, step=len(parts.trials))
        if parts.ranked:  # the champion's values (a grown family's best may be below full resolution)
            best = next((t for t in parts.ranked if t.number == parts.champion), parts.ranked[0])
            run.metrics({f"best_{o}": v for o, v in zip(spec.objectives, best.values)}, step=len(parts.trials))
        if parts.baseline:  # the no-search reference beside the best, in the MLflow UI
            run.metrics({f"baseline_{o}": v for o, v in parts.baseline["values"].items()}, step=len(parts.trials))
            run.tags({"genas.baseline_study": parts.baseline["study"],
                      "genas.baseline_images": str(parts.baseline.get("images"))})
        gains = {f"module_gain_{e.param}": e.gain for e in parts.switches if e.gain is not None}
        if gains:  # what each switchable module was worth, on the parent run in the MLflow UI
            run.metrics(gains, step=len(parts.trials))
        run.finish("FINISHED")


__all__ = ["ReportParts", "build_report", "log_study_report", "write_html"]
