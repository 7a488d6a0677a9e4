"""The ``genas`` command line. Heavy imports (torch, mlflow) happen inside commands so --help is fast."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from genas.errors import GenasError

BUDGET_CHOICE = click.Choice(["tiny", "small", "full"])
log = logging.getLogger("genas")


class GenasGroup(click.Group):
    """Prints a GenasError as one line (no traceback) and exits 2."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201 - click's signature
        try:
            return super().invoke(ctx)
        except GenasError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(2)


def _setup_logging(verbose: bool) -> None:
    import os
    import warnings

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    if not verbose:
        # Library notices (Optuna's "experimental" flags, MLflow's hints) are not for CLI users.
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(show_path=False, console=_console(stderr=True))], force=True)
    for noisy in ("optuna", "mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not verbose else logging.INFO)
    import optuna

    if not verbose:
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)


def _console(stderr: bool = False):  # noqa: ANN202
    from rich.console import Console

    return Console(stderr=stderr)


@click.group(cls=GenasGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="genas")
@click.option("-v", "--verbose", is_flag=True, help="Log what genas does (INFO level).")
def cli(verbose: bool) -> None:
    """Architecture and hyperparameter search for generative models.

    Optuna runs the search, every trial is logged to MLflow, the best model is registered as
    genas-<study> with the alias champion. State lives in ./genas-runs (or $GENAS_HOME) unless
    --storage / $GENAS_STORAGE and $MLFLOW_TRACKING_URI say otherwise.
    """
    _setup_logging(verbose)


@contextmanager
def _progress_display(total_trials: int | None) -> Iterator["object"]:
    """A rich progress display: one bar for trials, one for the running trial's images."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from genas.search.objective import Progress as Hooks

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console(stderr=True), transient=False) as bars:
        trials = bars.add_task("trials", total=total_trials)
        images = bars.add_task("images", total=1, visible=False)

        def started(number: int, label: str) -> None:
            bars.reset(images, total=1, description=label, visible=True)

        def advanced(done: int, total: int) -> None:
            bars.update(images, completed=done, total=total)

        def finished(trial) -> None:  # noqa: ANN001
            state = trial.state.name if trial is not None else "?"
            value = " " + ", ".join(f"{v:.3f}" for v in trial.values) if trial is not None and trial.values else ""
            bars.console.log(f"trial {trial.number if trial else '?'}: {state}{value}")
            bars.advance(trials)

        yield Hooks(started, advanced, finished)


def _leaderboard(study, spec, limit: int = 10) -> None:  # noqa: ANN001
    from rich.table import Table

    from genas.search.growth import rank_trials
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    table = Table(title=f"leaderboard: {study.study_name}")
    table.add_column("rank")
    table.add_column("trial")
    for name in spec.objectives:
        table.add_column(name, justify="right")
    table.add_column("parent")
    table.add_column("action / params")
    for i, t in enumerate(rank_trials(complete, study.directions)[:limit] if complete else []):
        detail = t.user_attrs.get("action") or ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
        table.add_row(str(i + 1), str(t.number), *(f"{v:.3f}" for v in t.values),
                      _parent(t), detail)
    _console().print(table)


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _parent(t) -> str:  # noqa: ANN001
    if "parent" not in t.user_attrs:
        return ""
    return "root" if t.user_attrs["parent"] is None else str(t.user_attrs["parent"])


@cli.command()
@click.argument("space")
@click.option("--dataset", default="mnist5k", show_default=True,
              help="mnist5k, digits, folder:PATH[@RES], cifar10:PATH or npz:PATH[@RES].")
@click.option("--trials", type=int, default=None, help="Trials to run now [default: the budget's].")
@click.option("--timeout", type=float, default=None, help="Stop starting trials after this many seconds.")
@click.option("--budget", type=BUDGET_CHOICE, default="small", show_default=True,
              help="tiny: seconds on a CPU; small: minutes on a CPU; full: the published scale on a GPU.")
@click.option("--objective", default="swd", show_default=True,
              help="swd, fid, kid, fid_digitnet …; comma-separated for a multi-objective study.")
@click.option("--sampler", default=None, help="growth (dggan), tpe, random, cmaes, qmc, nsga2 [default: the space's].")
@click.option("--pruner", default=None,
              help="median, hyperband, successive_halving, percentile or none (single objective only) "
                   "[default: the space's: none for dggan, median otherwise].")
@click.option("--top-k", type=int, default=None, help="Growth sampler: parents come from the k best [default: the budget's].")
@click.option("--storage", default=None, help="Optuna storage URL [default: $GENAS_STORAGE or sqlite in the genas home].")
@click.option("--study-name", default=None, help="[default: SPACE-DATASET]; an existing study is resumed.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--alias", default="champion", show_default=True, help="Alias given to the registered best model.")
def search(space: str, dataset: str, trials: int | None, timeout: float | None, budget: str, objective: str,
           sampler: str | None, pruner: str | None, top_k: int | None, storage: str | None, study_name: str | None,
           device: str, seed: int, alias: str) -> None:
    """Create (or resume) a study of SPACE, run it, register the best trial and show the leaderboard."""
    from genas.search.study import StudySpec, create_or_resume, default_study_name, open_storage, validate_spec
    from genas.spaces.base import get_space

    space_obj = get_space(space)
    spec = StudySpec(space=space, dataset=dataset, budget=budget,
                     objectives=tuple(o.strip() for o in objective.split(",") if o.strip()),
                     sampler=sampler or space_obj.default_sampler, pruner=pruner or space_obj.default_pruner,
                     seed=seed, top_k=top_k)
    validate_spec(spec)
    from genas.data import load_dataset
    from genas.evaluators import preflight
    from genas.search.objective import resolve_device

    load_dataset(dataset)  # a bad dataset fails here, before the study exists
    preflight(spec.objectives)
    resolve_device(device)
    name = study_name or default_study_name(space, dataset)
    study = create_or_resume(name, spec, open_storage(storage))
    n_trials = trials if trials is not None else space_obj.budget(budget)["trials"]
    _run_and_finish(study, spec, n_trials, timeout, device, alias)


def _run_and_finish(study, spec, n_trials, timeout, device, alias) -> None:  # noqa: ANN001
    from genas.registry.promote import promote
    from genas.search.worker import run_worker

    with _progress_display(n_trials) as hooks:
        study = run_worker(study, spec, n_trials=n_trials, timeout=timeout, device=device, progress=hooks)
    _leaderboard(study, spec)
    promotion = promote(study, alias)
    _print_next_steps(study, promotion)


def _print_next_steps(study, promotion) -> None:  # noqa: ANN001
    from genas.images import save_grid
    from genas.registry.model import load_generator

    uri = f"models:/{promotion.name}@{promotion.alias}"
    grid_path = Path(f"{study.study_name}-{promotion.alias}.png").resolve()
    save_grid(load_generator(uri).sample(64, seed=0), grid_path)
    click.echo(f"registered {promotion.name} version {promotion.version} (trial {promotion.trial}) as @{promotion.alias}")
    click.echo(f"sample grid: {grid_path}")
    click.echo("browse the trials:  genas ui")
    click.echo(f"sample more:        genas sample {uri} -n 64 -o grid.png")
    click.echo(f'from Python:        genas.load("{uri}").sample(16, seed=0)')


@cli.command()
@click.argument("study_name")
@click.option("--trials", type=int, default=None, help="Trials this worker runs [default: until --timeout or stopped].")
@click.option("--timeout", type=float, default=None, help="Stop starting trials after this many seconds.")
@click.option("--storage", default=None, help="Optuna storage URL of the study.")
@click.option("--device", default="auto", show_default=True)
def worker(study_name: str, trials: int | None, timeout: float | None, storage: str | None, device: str) -> None:
    """Join an existing study and run trials; start several at once against one storage."""
    from genas.search.objective import resolve_device
    from genas.search.study import load_study, open_storage
    from genas.search.worker import run_worker

    study, spec = load_study(study_name, open_storage(storage))
    resolve_device(device)
    with _progress_display(trials) as hooks:
        run_worker(study, spec, n_trials=trials, timeout=timeout, device=device, progress=hooks)


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
    _console().print(table)


@study.command("show")
@click.argument("study_name")
@click.option("--storage", default=None)
def study_show(study_name: str, storage: str | None) -> None:
    """The trials table (number, state, values, parent, action, duration) and the best trial."""
    from rich.table import Table

    from genas.registry.promote import best_trial
    from genas.search.study import load_study, open_storage

    st, spec = load_study(study_name, open_storage(storage))
    table = Table(title=f"{study_name}: {spec.space} on {spec.dataset} ({spec.budget}), minimise {','.join(spec.objectives)}")
    for col in ("trial", "state", *spec.objectives, "parent", "action / params", "duration", "note"):
        table.add_column(col)
    for t in st.get_trials(deepcopy=False):
        values = [f"{v:.3f}" for v in t.values] if t.values else ["-"] * len(spec.objectives)
        detail = t.user_attrs.get("action") or ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
        duration = f"{t.duration.total_seconds():.1f}s" if t.duration else "-"
        table.add_row(str(t.number), t.state.name, *values, _parent(t), detail, duration,
                      str(t.user_attrs.get("fail_reason", ""))[:60])
    console = _console()
    console.print(table)
    try:
        best = best_trial(st)
        console.print(f"best: trial {best.number} {dict(zip(spec.objectives, best.values))} "
                      f"run {best.user_attrs.get('mlflow_run_id')}")
    except GenasError:
        console.print("best: none yet (no complete trial)")


@cli.command()
@click.argument("model_uri")
@click.option("-n", "--num", "n", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="grid.png", show_default=True)
@click.option("--seed", type=int, default=None, help="Same seed, same images.")
def sample(model_uri: str, n: int, output: str, seed: int | None) -> None:
    """Sample N images from MODEL_URI (models:/genas-<study>@champion, runs:/ID/model or a folder) to a PNG grid."""
    from genas.images import save_grid
    from genas.registry.model import load_generator

    images = load_generator(model_uri).sample(n, seed=seed)
    click.echo(f"wrote {save_grid(images, output)} ({n} images, {tuple(images.shape[1:])})")


@cli.group(cls=GenasGroup)
def registry() -> None:
    """Registered models and their aliases."""


@registry.command("list")
def registry_list() -> None:
    """Registered genas models, their versions and aliases."""
    from rich.table import Table

    from genas.registry.tracking import client

    c = client()
    table = Table(title="registered models")
    for col in ("name", "versions", "aliases", "latest source run"):
        table.add_column(col)
    for m in c.search_registered_models():
        versions = c.search_model_versions(f"name='{m.name}'")
        latest = max(versions, key=lambda v: int(v.version)) if versions else None
        aliases = ", ".join(f"@{a}→v{v}" for a, v in sorted((m.aliases or {}).items()))
        table.add_row(m.name, str(len(versions)), aliases or "-", latest.run_id if latest else "-")
    _console().print(table)


@registry.command("promote")
@click.argument("study_name")
@click.option("--alias", default="champion", show_default=True)
@click.option("--storage", default=None)
def registry_promote(study_name: str, alias: str, storage: str | None) -> None:
    """Register STUDY's best trial as genas-<study> and move ALIAS to it."""
    from genas.registry.promote import promote
    from genas.search.study import load_study, open_storage

    st, _ = load_study(study_name, open_storage(storage))
    p = promote(st, alias)
    click.echo(f"{p.name} version {p.version} (trial {p.trial}) is now @{p.alias}")


@cli.command("eval")
@click.option("--dataset", default="mnist5k", show_default=True)
@click.option("--fake", required=True, help="A folder of images, or a model URI to sample from.")
@click.option("--metrics", default="swd", show_default=True, help="Comma-separated: swd, fid, kid, fid_digitnet …")
@click.option("-n", "--num", "n", type=int, default=1000, show_default=True, help="Samples drawn from a model.")
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def eval_(dataset: str, fake: str, metrics: str, n: int, device: str, seed: int) -> None:
    """Compute metrics of FAKE images against DATASET on their own."""
    from genas.data import load_dataset, to_uint8
    from genas.evaluators import check_metrics, evaluate, preflight
    from genas.registry.model import load_generator
    from genas.search.objective import resolve_device

    names = [m.strip() for m in metrics.split(",") if m.strip()]
    check_metrics(names)
    preflight(names)
    real = load_dataset(dataset)
    if Path(fake).is_dir() and not (Path(fake) / "MLmodel").exists() and not (Path(fake) / "generator").exists():
        images = to_uint8(load_dataset(f"folder:{fake}@{real.resolution}").images)
    else:
        images = load_generator(fake).sample(n, seed=seed)
    result = evaluate(images, real, names, device=resolve_device(device), n_real=len(images), seed=seed)
    for key, value in result.items():
        click.echo(f"{key}\t{value:.4f}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5000, show_default=True)
def ui(host: str, port: int) -> None:
    """Start the MLflow UI on the genas home's tracking backend and print its address."""
    import subprocess

    from genas.home import artifact_root
    from genas.registry.tracking import configure_mlflow

    uri = configure_mlflow()
    click.echo(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C to stop)")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
           "--default-artifact-root", artifact_root().as_uri()]
    raise SystemExit(subprocess.call(cmd))


def main() -> None:
    cli(prog_name="genas")


if __name__ == "__main__":
    main()
