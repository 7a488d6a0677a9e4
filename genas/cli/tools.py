"""``genas eval`` and ``genas ui``."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from genas.cli.app import PORT, cli
from genas.errors import GenasError


@cli.command("eval")
@click.option("--dataset", default="mnist5k", show_default=True)
@click.option("--fake", required=True, help="A folder of images, or a model URI to sample from.")
@click.option("--metrics", default="swd", show_default=True, help="Comma-separated: swd, fid, kid, fid_digitnet …")
@click.option("-n", "--num", "n", type=click.IntRange(min=2), default=1000, show_default=True,
              help="Samples drawn from a model.")
@click.option("--device", default="auto", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
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
        from genas.errors import GenasError
        from genas.spaces.base import outputs_of

        generator = load_generator(fake)
        if outputs_of(generator) != "images":
            raise GenasError(f"{fake} generates {outputs_of(generator)}, not images; `genas eval` scores images "
                             "(a pdiff study's runs hold its accuracy and memorisation metrics)")
        images = generator.sample(n, seed=seed)
    # the real side is the dataset's standard set (FID/KID: all its images up to 50,000), not len(images)
    result = evaluate(images, real, names, device=resolve_device(device), seed=seed)
    for key, value in result.items():
        click.echo(f"{key}\t{value:.4f}")
    for key, count in result.counts.items():  # swd_n_fake, fid_n_real …: what the numbers were computed on
        click.echo(f"{key}\t{count}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=PORT, default=5000, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Server processes (one serves one person; each takes seconds to start).")
def ui(host: str, port: int, workers: int) -> None:
    """Start the MLflow UI on the genas home's tracking backend and print its address.

    SIGTERM or Ctrl-C stops it with all its processes.
    """
    from genas.cli.children import run_child
    from genas.home import artifact_root
    from genas.registry.tracking import configure_mlflow

    uri = configure_mlflow()
    click.echo(f"MLflow UI for {uri} at http://{host}:{port} (Ctrl-C to stop)")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
           "--workers", str(workers), "--default-artifact-root", artifact_root().as_uri()]
    raise SystemExit(run_child(cmd))


@cli.command()
@click.option("--backend-store-uri", default=None,
              help="Database for runs and the model registry, e.g. postgresql://USER@HOST/mlflow "
                   "[default: SQLite in the genas home].")
@click.option("--artifacts-destination", default=None,
              help="Where runs' artifacts go: a shared path or s3://bucket/prefix [default: the genas home's mlartifacts].")
@click.option("--storage", default=None,
              help="The Optuna storage the workers will use (a different database from the backend store); "
                   "checked and printed in the worker command.")
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 to accept other machines.")
@click.option("--port", type=PORT, default=5000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Server processes.")
def server(backend_store_uri: str | None, artifacts_destination: str | None, storage: str | None, host: str,
           port: int, workers: int) -> None:
    """Start the team's MLflow tracking server (MLflow's own `mlflow server`, registry on the database).

    Workers on any machine then log through it: MLFLOW_TRACKING_URI=http://HOST:PORT genas worker STUDY
    --storage postgresql://…; artifacts (checkpoints, models) travel through the server. SIGTERM or
    Ctrl-C stops it with all its processes.
    """
    from genas.cli.children import run_child
    from genas.home import artifact_root, default_tracking_uri

    backend = backend_store_uri or default_tracking_uri()
    if backend.startswith(("http://", "https://")):
        raise GenasError(f"--backend-store-uri must be a database (postgresql://…, sqlite:///…), not {backend}")
    destination = artifacts_destination or artifact_root().as_uri()
    if storage is not None:
        from genas.search.study import open_storage

        open_storage(storage)  # a bad URL fails here, with the one-line error
    shown_host = "HOST" if host == "0.0.0.0" else host
    click.echo(f"MLflow tracking server: backend {backend}, artifacts {destination}")
    click.echo(f"on each worker machine:\n  export MLFLOW_TRACKING_URI=http://{shown_host}:{port}\n"
               f"  genas worker STUDY --storage {storage or 'postgresql://USER@HOST/optuna'}")
    click.echo("(Ctrl-C to stop)", err=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
           "--artifacts-destination", destination, "--serve-artifacts", "--host", host, "--port", str(port),
           "--workers", str(workers)]
    raise SystemExit(run_child(cmd))
