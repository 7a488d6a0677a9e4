"""What the CLI shows: a live line per trial, the leaderboard and the trials table."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from genas.cli.app import console
from genas.report.labels import detail, generation_label, images_label, parent_label, short


@contextmanager
def progress_display(total_trials: int | None) -> Iterator["object"]:
    """A bar for the study's trials and a live line for the running trial.

    The trial line shows images seen, images/s, the latest intermediate metric and the ETA.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Column

    from genas.search.objective import Progress as Hooks

    # Fits 80 columns: the label is cut with an ellipsis, not the numbers.
    columns = (TextColumn("{task.description}", table_column=Column(max_width=24, no_wrap=True, overflow="ellipsis")),
               BarColumn(bar_width=10), MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TextColumn("eta"),
               TimeRemainingColumn(compact=True))
    with Progress(*columns, console=console(stderr=True), transient=False) as bars:
        trials = bars.add_task("trials", total=total_trials, info="")
        images = bars.add_task("images", total=1, visible=False, info="")
        shown = {"rate": "", "metric": ""}

        def show() -> None:
            bars.update(images, info=" ".join(v for v in shown.values() if v))

        def started(number: int, label: str) -> None:
            shown.update(rate="", metric="")
            bars.reset(images, total=1, description=label, visible=True, info="")

        def advanced(done: int, total: int) -> None:
            bars.update(images, completed=done, total=total)
            speed = bars.tasks[images].speed
            if speed:
                shown["rate"] = f"{speed:,.0f} img/s"
                show()

        def reported(metrics: dict[str, float]) -> None:
            quick = {k: v for k, v in metrics.items() if k.endswith("_quick")} or metrics
            shown["metric"] = " ".join(f"{k}={v:.3g}" for k, v in list(quick.items())[:2])
            show()

        def finished(trial) -> None:  # noqa: ANN001 - optuna's FrozenTrial or None
            state = trial.state.name if trial is not None else "?"
            value = " " + ", ".join(f"{v:.3f}" for v in trial.values) if trial is not None and trial.values else ""
            reason = trial.user_attrs.get("fail_reason", "") if trial is not None and state == "FAIL" else ""
            bars.console.log(f"trial {trial.number if trial else '?'}: {state}{value}"
                             + (f" ({reason[:100]})" if reason else ""))
            bars.advance(trials)

        yield Hooks(started, advanced, finished, reported)


def leaderboard(study, spec, limit: int = 10) -> None:  # noqa: ANN001
    from optuna.trial import TrialState
    from rich.table import Table

    from genas.registry.promote import champion_number
    from genas.search.ranking import rank_trials
    from genas.spaces.base import get_space

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = ", ".join(f"{n} {s.name.lower()}" for s in TrialState
                       if (n := sum(t.state == s for t in trials)))
    table = Table(title=f"leaderboard: {study.study_name} ({counts or 'no trials'})")
    table.add_column("rank")
    table.add_column("trial")
    extra = get_space(spec.space).leaderboard_columns  # a space's own figures, e.g. pdiff's memorisation
    for name in [*spec.objectives, *extra.values()]:
        table.add_column(name, justify="right")
    table.add_column("images", justify="right")
    grows = any("generation" in t.user_attrs for t in complete)
    if grows:
        table.add_column("gen", justify="right")
        table.add_column("parent")
    table.add_column("action / params")
    table.add_column("duration", justify="right")
    ranked = rank_trials(complete, study.directions) if complete else []
    champion = champion_number(complete, study.directions)
    for i, t in enumerate(ranked[:limit]):
        duration = f"{t.duration.total_seconds():.0f}s" if t.duration else "-"
        lineage = [generation_label(t), parent_label(t)] if grows else []
        table.add_row(str(i + 1), f"{t.number} ★" if t.number == champion else str(t.number),
                      *(f"{v:.3f}" for v in t.values), *(short(t.user_attrs.get(k, "")) for k in extra),
                      images_label(t), *lineage, detail(t), duration)
    if champion is not None and ranked and ranked[0].number != champion:
        table.caption = champion_caption(next(t for t in complete if t.number == champion), ranked[0])
    console().print(table)


def champion_caption(champion, first) -> str:  # noqa: ANN001 - FrozenTrials
    """Why the champion (★) is not the first row: a finalist and its parent compared on the same
    draws, or a first row below the dataset's resolution."""
    from genas.registry.promote import paired_draws
    from genas.search.beam import PARENT_ATTR

    for finalist, parent in ((champion, first), (first, champion)):
        draws = paired_draws(finalist)
        if draws and finalist.user_attrs.get(PARENT_ATTR) == parent.number:
            f, p = (" / ".join(f"{pair[i]:.3f}" for pair in draws) for i in (0, 1))
            rule = "the parent replaces the finalist only if better on every draw"
            return (f"★ champion: trial {champion.number}. Scored on the same {len(draws)} draw"
                    f"{'s' if len(draws) > 1 else ''}, the finalist (trial {finalist.number}) had {f} and its "
                    f"parent (trial {parent.number}) {p}; {rule}")
    return (f"★ champion: trial {champion.number}, the best at the dataset's resolution "
            "(of a finalist and its parent, the one their paired draws favour)")
