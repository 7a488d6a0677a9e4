"""The ``genas`` click group: one-line errors, logging and the shared console."""
from __future__ import annotations

import logging

import click

from genas.errors import GenasError

BUDGET_CHOICE = click.Choice(["tiny", "small", "full"])
# Counts are checked by click, before a study, a run or a file exists.
PORT = click.IntRange(1, 65535)
SEED = click.IntRange(min=0)  # numpy's and Optuna's seeds are unsigned
TIMEOUT = click.FloatRange(min=0, min_open=True)


class GenasGroup(click.Group):
    """Prints a GenasError, or a bad option value (``--trials -3``), as one line and exits 2."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201 - click's signature
        try:
            return super().invoke(ctx)
        except GenasError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            ctx.exit(2)
        except click.UsageError as exc:  # click's own usage block is four lines; the message is the news
            where = (exc.ctx or ctx).command_path
            message = " ".join(exc.format_message().split())
            click.secho(f"error: {message} (see {where} --help)", fg="red", err=True)
            ctx.exit(2)


def console(stderr: bool = False):  # noqa: ANN201 - rich is imported lazily
    from rich.console import Console

    return Console(stderr=stderr, log_path=False)


def setup_logging(verbose: bool) -> None:
    import os
    import warnings

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    if not verbose:
        # Library notices (Optuna's "experimental" flags, MLflow's hints) are not for CLI users.
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(show_path=False, console=console(stderr=True))], force=True)
    for noisy in ("optuna", "mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not verbose else logging.INFO)
    import optuna

    if not verbose:
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)


@click.group(cls=GenasGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="genas")
@click.option("-v", "--verbose", is_flag=True, help="Log what genas does (INFO level).")
def cli(verbose: bool) -> None:
    """Architecture and hyperparameter search for generative models.

    Optuna runs the search, every trial is logged to MLflow, the best model is registered as
    genas-<study> with the alias champion. State lives in ./genas-runs (or $GENAS_HOME) unless
    --storage / $GENAS_STORAGE and $MLFLOW_TRACKING_URI say otherwise.
    """
    setup_logging(verbose)
