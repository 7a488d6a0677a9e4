"""``genas sample``, ``genas registry …`` and ``genas serve``: using what a study registered."""
from __future__ import annotations

from pathlib import Path

import click

from genas.cli.app import PORT, SEED, GenasGroup, cli, console


@cli.command()
@click.argument("model_uri")
@click.option("-n", "--num", "n", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("-o", "--output", type=click.Path(), default=None,
              help="PNG grid of the images [default: grid.png]; for a model that generates classifiers, "
                   "a folder for their safetensors files [default: models/].")
@click.option("--seed", type=SEED, default=None, help="Same seed, same images.")
def sample(model_uri: str, n: int, output: str | None, seed: int | None) -> None:
    """Sample N images from MODEL_URI (models:/genas-<study>@champion, runs:/ID/model or a folder) to a PNG grid.

    A pdiff model writes N generated classifiers instead: OUTPUT/model-000.safetensors … and
    OUTPUT/config.json (what rebuilds them: genas.load(URI).sample_models).
    """
    from genas.images import save_grid
    from genas.registry.model import load_generator
    from genas.spaces.base import outputs_of

    generator = load_generator(model_uri)
    if outputs_of(generator) == "parameters":
        folder = write_models(generator, n, Path(output or "models"), seed)
        click.echo(f"wrote {n} generated models to {folder} (model-000.safetensors …, config.json)")
        return
    images = generator.sample(n, seed=seed)
    click.echo(f"wrote {save_grid(images, output or 'grid.png')} ({n} images, {tuple(images.shape[1:])})")


def write_models(generator, n: int, folder: Path, seed: int | None) -> Path:  # noqa: ANN001 - a parameter generator
    """Each generated model's state dict as safetensors, with the generator's config beside them."""
    import json

    from safetensors.torch import save_file

    from genas.errors import GenasError

    if folder.exists() and not folder.is_dir():
        raise GenasError(f"{folder} is a file; pass -o with a folder for the generated models")
    folder.mkdir(parents=True, exist_ok=True)
    for i, model in enumerate(generator.sample_models(n, seed=seed)):
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(folder / f"model-{i:03d}.safetensors"))
    (folder / "config.json").write_text(json.dumps(generator.state()[0], indent=2))
    return folder


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
    console().print(table)


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


@cli.command()
@click.argument("model_uri")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=PORT, default=5001, show_default=True)
@click.option("--max-samples", type=click.IntRange(1, 65536), default=None,
              help="Largest n one request may ask for [default: 1024].")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
def serve(model_uri: str, host: str, port: int, max_samples: int | None, workers: int) -> None:
    """Serve MODEL_URI over REST with MLflow's model server; POST /invocations {"inputs": {"n": 4, "seed": 0}}.

    SIGTERM or Ctrl-C stops the server with all its processes.
    """
    from genas.registry.serve import serve_command

    cmd, env = serve_command(model_uri, host, port, max_samples, workers)
    click.echo(f"serving {model_uri} at http://{host}:{port}/invocations (Ctrl-C to stop)")
    click.echo(f"""try: curl -s http://{host}:{port}/invocations -H 'Content-Type: application/json' """
               """-d '{"inputs": {"n": 4, "seed": 0}}'""")
    from genas.cli.children import run_child

    raise SystemExit(run_child(cmd, env))
