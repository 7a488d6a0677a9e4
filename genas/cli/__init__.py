"""The ``genas`` command line. Heavy imports (torch, mlflow) happen inside commands so --help is fast.

``app`` holds the group; each module below adds its commands to it.
"""
from genas.cli.app import cli
from genas.cli import models, studies, tools  # noqa: E402,F401 - registers the commands


def main() -> None:
    cli(prog_name="genas")


__all__ = ["cli", "main"]
