"""``genas search``, ``genas worker``, ``genas study …`` and ``genas report``."""
from __future__ import annotations

from pathlib import Path

import click

from genas.cli.app import BUDGET_CHOICE, SEED, TIMEOUT, GenasGroup, cli, console
from genas.cli.display import leaderboard, progress_display
from genas.report.labels import detail, generation_label, images_label, parent_label, short
from genas.errors import GenasError


@cli.command()
@click.argument("space")
@click.option("--dataset", default="mnist5k", show_default=True,
              help="mnist5k, digits, folder:PATH[@RES], cifar10:PATH or npz:PATH[@RES].")
@click.option("--trials", type=click.IntRange(min=0), default=None,
              help="Trials to run now (0: only create the study, for workers) [default: the budget's].")
@click.option("--timeout", type=TIMEOUT, default=None, help="Stop starting trials after this many seconds.")
@click.option("--budget", type=BUDGET_CHOICE, default="small", show_default=True,
              help="tiny: seconds on a CPU; small: minutes on a CPU; full: the published scale on a GPU.")
@click.option("--objective", default=None,
              help="swd, fid, kid, fid_digitnet … or a space's own metric; comma-separated for a "
                   "multi-objective study [default: the space's: swd for the GANs].")
@click.option("--sampler", default=None, help="growth (dggan), tpe, random, cmaes, qmc, nsga2 [default: the space's].")
@click.option("--pruner", default=None,
              help="median, hyperband, successive_halving, percentile or none (single objective only) "
                   "[default: the space's: none for dggan, median otherwise].")
@click.option("--top-k", type=click.IntRange(min=1), default=None,
              help="Growth sampler: each generation expands the k best of the last [default: the budget's].")
@click.option("--storage", default=None, help="Optuna storage URL [default: $GENAS_STORAGE or sqlite in the genas home].")
@click.option("--study-name", default=None, help="[default: SPACE-DATASET]; an existing study is resumed.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--alias", default="champion", show_default=True, help="Alias given to the registered best model.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A space option the search does not tune (repeatable), e.g. --set arch=resnet18 for pdiff.")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="After a GAN search, train the textbook DCGAN (the paper's configuration) on the champion's "
                   "images and show both (reused when the storage has it).")
def search(space: str, dataset: str, trials: int | None, timeout: float | None, budget: str, objective: str | None,
           sampler: str | None, pruner: str | None, top_k: int | None, storage: str | None, study_name: str | None,
           device: str, seed: int, alias: str, settings: tuple[str, ...], baseline: bool) -> None:
    """Create (or resume) a study of SPACE, run it, register the best trial and show the leaderboard."""
    from genas.data import load_dataset
    from genas.evaluators import preflight
    from genas.search.objective import resolve_device
    from genas.search.study import (StudySpec, create_or_resume, default_study_name, image_objectives, open_storage,
                                    validate_spec)
    from genas.spaces.base import get_space

    space_obj = get_space(space)
    objectives = (tuple(o.strip() for o in objective.split(",") if o.strip()) if objective is not None
                  else space_obj.default_objectives)
    spec = StudySpec(space=space, dataset=dataset, budget=budget, objectives=objectives,
                     sampler=sampler or space_obj.default_sampler, pruner=pruner or space_obj.default_pruner,
                     seed=seed, top_k=top_k, options=parse_settings(settings))
    validate_spec(spec)
    # a bad dataset or option fails here, before the study exists
    data = load_dataset(dataset)
    options = space_obj.resolve_options(spec.options)
    space_obj.check(data, options, budget=budget, objectives=spec.objectives)
    if image_objectives(spec, space_obj):
        preflight(image_objectives(spec, space_obj))
    resolve_device(device)
    name = study_name or default_study_name(space, dataset)
    study = create_or_resume(name, spec, open_storage(storage))
    n_trials = trials if trials is not None else space_obj.default_trials(budget, options, data.resolution)

    from genas.registry.promote import promote
    from genas.report import log_study_report
    from genas.search.worker import run_worker, study_parent_run

    if n_trials == 0:  # create the study for workers elsewhere, run nothing here
        study_parent_run(study, spec)
        click.echo(f"study {name} is ready ({spec.space} on {spec.dataset}, {spec.budget}); start workers with:\n"
                   f"  genas worker {name}" + (f" --storage {storage}" if storage else ""))
        return
    with progress_display(n_trials) as hooks:
        study = run_worker(study, spec, n_trials=n_trials, timeout=timeout, device=device, progress=hooks,
                           storage_url=storage, stop_at_plan=trials is None)
    leaderboard(study, spec)
    promotion = promote(study, alias)
    if baseline:
        _compare_with_baseline(study, spec, space_obj, storage, device)
    log_study_report(study, spec)
    _print_next_steps(study, promotion)


def _compare_with_baseline(study, spec, space, storage: str | None, device: str) -> None:  # noqa: ANN001
    from genas.registry.promote import best_trial
    from genas.search.baseline import applies, compare, describe, reference, reference_study_name

    if not applies(space, spec):
        return
    champion = best_trial(study)
    images = int(champion.user_attrs.get("lineage_images") or 0)
    if images <= 0:
        return
    click.echo(f"training the no-search baseline: dcgan, the paper's configuration, on {images:,} images "
               f"(--no-baseline skips it)")
    ref = reference(spec, images, storage, device)
    record = compare(study, spec, champion, ref, reference_study_name(spec, images))
    click.echo("baseline " + describe(record, [d.name.lower() for d in study.directions]))


def parse_settings(settings: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"--set takes KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _print_next_steps(study, promotion) -> None:  # noqa: ANN001
    from genas.images import save_grid
    from genas.registry.model import load_generator
    from genas.spaces.base import outputs_of

    uri = f"models:/{promotion.name}@{promotion.alias}"
    click.echo(f"registered {promotion.name} version {promotion.version} (trial {promotion.trial}) as @{promotion.alias}")
    generator = load_generator(uri)
    if outputs_of(generator) == "parameters":
        click.echo(f"generated models:   genas sample {uri} -n 8 -o models/")
        click.echo(f'from Python:        genas.load("{uri}").sample_models(8, seed=0)')
        click.echo("browse the trials:  genas ui")
        return
    grid_path = Path(f"{study.study_name}-{promotion.alias}.png").resolve()
    save_grid(generator.sample(64, seed=0), grid_path)
    click.echo(f"sample grid: {grid_path}")
    click.echo("browse the trials:  genas ui")
    click.echo(f"study report:       genas report {study.study_name} -o report.html")
    click.echo(f"sample more:        genas sample {uri} -n 64 -o grid.png")
    click.echo(f"serve over REST:    genas serve {uri} --port 5001")
    click.echo(f'from Python:        genas.load("{uri}").sample(16, seed=0)')


@cli.command()
@click.argument("study_name")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Trials this worker runs [default: until a limit below or stopped].")
@click.option("--timeout", type=TIMEOUT, default=None, help="Stop starting trials after this many seconds.")
@click.option("--total-trials", type=click.IntRange(min=1), default=None,
              help="Stop once the study has this many complete trials, counting every worker's.")
@click.option("--storage", default=None, help="Optuna storage URL of the study.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--gpus", default=None, help="Comma-separated GPU indices: one worker process per GPU (0,1,2,3).")
@click.option("--devices", default=None, help="Comma-separated devices, one worker process each (cpu,cpu or cuda:0,cuda:1).")
def worker(study_name: str, trials: int | None, timeout: float | None, total_trials: int | None,
           storage: str | None, device: str, gpus: str | None, devices: str | None) -> None:
    """Join an existing study and run trials; start several at once against one storage.

    SIGINT or SIGTERM fails the running trial cleanly (its MLflow run ends KILLED with the
    reason), queues it again for another worker, and exits.
    """
    from genas.search.objective import resolve_device
    from genas.search.study import load_study, open_storage, warn_if_shared_sqlite

    study, spec = load_study(study_name, open_storage(storage))
    if gpus and devices:
        raise GenasError("pass either --gpus or --devices, not both")
    pool = [f"cuda:{g.strip()}" for g in gpus.split(",")] if gpus else \
        [d.strip() for d in devices.split(",")] if devices else None
    for d in pool or [device]:
        resolve_device(d)
    warn_if_shared_sqlite(study, storage, len(pool or [device]))
    if pool:
        from genas.search.pool import run_pool, worker_command

        click.echo(f"starting {len(pool)} workers on {', '.join(pool)} for study {study_name}")
        raise SystemExit(run_pool([worker_command(study_name, d, storage, trials, timeout, total_trials)
                                   for d in pool]))
    from genas.search.worker import run_worker

    try:
        with progress_display(trials) as hooks:
            study = run_worker(study, spec, n_trials=trials, timeout=timeout, device=device, progress=hooks,
                               total_trials=total_trials, storage_url=storage, stop_at_plan=trials is None)
    except KeyboardInterrupt as stop:
        click.secho(f"worker stopped ({stop or 'SIGINT'}); the running trial was failed and queued again",
                    fg="yellow", err=True)
        raise SystemExit(130) from None
    leaderboard(study, spec)


@cli.group(cls=GenasGroup)
def study() -> None:
    """List studies and show their trials."""


@study.command("list")
@click.option("--storage", default=None)
def study_list(storage: str | None) -> None:
    """Every study in the storage with its space, trial count and best value."""
    import optuna
    from rich.table import Table

    from genas.search.study import open_storage

    summaries = optuna.get_all_study_summaries(open_storage(storage), include_best_trial=True)
    table = Table(title="studies")
    for col in ("study", "space", "dataset", "budget", "objectives", "trials", "best"):
        table.add_column(col)
    for s in summaries:
        attrs = s.user_attrs
        best = ", ".join(f"{v:.3f}" for v in s.best_trial.values) if s.best_trial and s.best_trial.values else "-"
        table.add_row(s.study_name, str(attrs.get("space", "?")), str(attrs.get("dataset", "?")),
                      str(attrs.get("budget", "?")), ",".join(attrs.get("objectives", [])), str(s.n_trials), best)
    console().print(table)


@study.command("show")
@click.argument("study_name")
@click.option("--storage", default=None)
def study_show(study_name: str, storage: str | None) -> None:
    """The trials table (number, state, values, parent, action, duration) and the best trial."""
    from rich.table import Table

    from genas.registry.promote import best_trial
    from genas.report.ablation import fmt, switch_effects
    from genas.search.study import load_study, open_storage
    from genas.spaces.base import get_space

    st, spec = load_study(study_name, open_storage(storage))
    goals = ", ".join(f"{d.name.lower()[:3]}imise {o}" for o, d in zip(spec.objectives, st.directions))
    options = f", {' '.join(f'{k}={v}' for k, v in spec.options.items())}" if spec.options else ""
    table = Table(title=f"{study_name}: {spec.space} on {spec.dataset} ({spec.budget}{options}), {goals}")
    trials = st.get_trials(deepcopy=False)
    grows = any("generation" in t.user_attrs for t in trials)
    lineage_cols = ("gen", "parent") if grows else ()
    extra = get_space(spec.space).leaderboard_columns  # a space's own figures, e.g. pdiff's memorisation
    for col in ("trial", "state", *spec.objectives, *extra.values(), "images", *lineage_cols, "action / params",
                "duration", "note"):
        table.add_column(col)
    for t in trials:
        values = [f"{v:.3f}" for v in t.values] if t.values else ["-"] * len(spec.objectives)
        duration = f"{t.duration.total_seconds():.1f}s" if t.duration else "-"
        note = str(t.user_attrs.get("fail_reason", ""))[:60] if t.state.name == "FAIL" else ""
        lineage = (generation_label(t), parent_label(t)) if grows else ()
        table.add_row(str(t.number), t.state.name, *values, *(short(t.user_attrs.get(k, "")) for k in extra),
                      images_label(t), *lineage, detail(t), duration, note)
    out = console()
    out.print(table)
    effects = switch_effects(st.get_trials(deepcopy=False), st.directions[0])
    if effects:
        ablation = Table(title=f"modules on / off (complete trials, {spec.objectives[0]}; gain > 0: the module helped)")
        ablation.add_column("module", no_wrap=True)
        for col in ("on n", "on mean", "on best", "off n", "off mean", "off best", "gain"):
            ablation.add_column(col, justify="right")
        for e in effects:
            ablation.add_row(e.param, str(e.on_count), fmt(e.on_mean), fmt(e.on_best), str(e.off_count),
                             fmt(e.off_mean), fmt(e.off_best), fmt(e.gain))
        out.print(ablation)
    try:
        best = best_trial(st)
        out.print(f"best: trial {best.number} {dict(zip(spec.objectives, best.values))} "
                  f"run {best.user_attrs.get('mlflow_run_id')}")
    except GenasError:
        out.print("best: none yet (no complete trial)")


@cli.command()
@click.argument("study_name")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="report.html", show_default=True)
@click.option("--storage", default=None)
@click.option("--log/--no-log", "log_to_mlflow", default=True, show_default=True,
              help="Also attach the plots and the lineage to the study's parent MLflow run.")
def report(study_name: str, output: str, storage: str | None, log_to_mlflow: bool) -> None:
    """Write STUDY's report as one self-contained HTML page: leaderboard, plots, lineage, best samples."""
    from genas.report import build_report, log_study_report, write_html
    from genas.search.study import load_study, open_storage

    st, spec = load_study(study_name, open_storage(storage))
    parts = build_report(st, spec)
    path = write_html(parts, Path(output))
    if log_to_mlflow:
        log_study_report(st, spec, parts)
    click.echo(f"wrote {path.resolve()} ({len(parts.figures)} plots, {len(parts.samples)} sample grids)")
