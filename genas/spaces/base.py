"""The contracts every family follows: a Space suggests and trains, a Generator samples.

A family lives wholly under ``genas/spaces/<name>/`` and joins the registry with
``@register_space``. The search, the evaluators and the registry only ever see these types.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import optuna
import torch

from genas.data import Dataset
from genas.errors import GenasError

BUDGETS = ("tiny", "small", "full")

Tensors = dict[str, torch.Tensor]


@runtime_checkable
class Generator(Protocol):
    """What every trained family hands back."""

    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` images as uint8 [n, C, H, W] on the CPU; the same seed gives the same images."""

    def state(self) -> tuple[dict, Tensors]:
        """A JSON-able config (with ``"space"``) and the tensors that rebuild this generator."""

    @classmethod
    def from_state(cls, config: dict, tensors: Tensors) -> "Generator":
        """Rebuild from :meth:`state`; raises GenasError when config and tensors do not match."""


@dataclass
class TrialContext:
    """What a Space may use while it trains one trial.

    The search builds it; tests build it with plain callables. ``report`` logs metrics to
    MLflow and reports to Optuna, and raises ``optuna.TrialPruned`` when the pruner says so.
    """

    dataset: Dataset
    budget: str
    device: torch.device
    seed: int
    trial: optuna.Trial | None = None
    reporter: Callable[[int, dict[str, float]], None] | None = None
    quick_evaluator: Callable[["Generator"], dict[str, float]] | None = None
    parent_loader: Callable[[], tuple[dict, Tensors] | None] | None = None
    state_saver: Callable[[dict, Tensors], None] | None = None
    attr_setter: Callable[[str, Any], None] | None = None
    progress: Callable[[int, int], None] | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("genas.trial"))

    def report(self, step: int, metrics: dict[str, float]) -> None:
        """Log intermediate metrics at ``step`` (images seen); may raise ``optuna.TrialPruned``."""
        if self.reporter is not None:
            self.reporter(step, metrics)

    def quick_eval(self, generator: "Generator") -> dict[str, float]:
        """A cheap score (SWD on few images) for intermediate reports; empty when not wired."""
        return self.quick_evaluator(generator) if self.quick_evaluator is not None else {}

    def parent_state(self) -> tuple[dict, Tensors] | None:
        """The training state the parent trial saved with :meth:`save_state`, or None for a root."""
        return self.parent_loader() if self.parent_loader is not None else None

    def save_state(self, config: dict, tensors: Tensors) -> None:
        """Keep the full training state (G, D, EMA …) so that a child trial can continue it."""
        if self.state_saver is not None:
            self.state_saver(config, tensors)

    def set_attr(self, key: str, value: Any) -> None:
        """Record a JSON-able fact about the trial (Optuna user attr and MLflow tag)."""
        if self.attr_setter is not None:
            self.attr_setter(key, value)
        elif self.trial is not None:
            self.trial.set_user_attr(key, value)

    def advance(self, done: int, total: int) -> None:
        """Tell the progress display how many of ``total`` training images are done."""
        if self.progress is not None:
            self.progress(done, total)


class Space(ABC):
    """A family of generators: suggest a config for a trial, train it, hand back a Generator."""

    name: ClassVar[str]
    generator_cls: ClassVar[type]
    default_sampler: ClassVar[str] = "tpe"
    default_pruner: ClassVar[str] = "median"
    #: sampler names this space works with; None means any
    samplers: ClassVar[tuple[str, ...] | None] = None
    #: objectives this space can be scored on (evaluator names; fid_<extractor> too)
    objectives: ClassVar[tuple[str, ...]] = ("swd", "fid", "kid")
    #: per budget: plain dict of sizes (images to train, batch, eval samples …)
    budgets: ClassVar[dict[str, dict]] = {}

    def budget(self, name: str) -> dict:
        if name not in self.budgets:
            raise GenasError(f"unknown budget {name!r}; use one of {', '.join(BUDGETS)}")
        return dict(self.budgets[name])

    @abstractmethod
    def suggest(self, trial: optuna.Trial, ctx: TrialContext) -> dict:
        """Define-by-run: ask the trial for this candidate's config, return it as a plain dict."""

    @abstractmethod
    def train(self, config: dict, ctx: TrialContext) -> Generator:
        """Build and train the candidate; call ``ctx.report`` as it goes."""


class GrowableSpace(Space):
    """A space whose candidates grow from a parent by one action (read by the growth sampler)."""

    #: the fixed categorical choices of each action parameter (Optuna needs static choices)
    action_params: ClassVar[dict[str, tuple]] = {}

    @abstractmethod
    def root_actions(self, resolution: int, budget: str) -> list[dict]:
        """The actions that start a lineage from the minimal networks."""

    @abstractmethod
    def next_actions(self, arch: dict, resolution: int, budget: str) -> list[dict]:
        """Every action that can grow ``arch`` (a trial's ``arch`` user attr) one step."""

    def arch_summary(self, arch: dict) -> str:
        """A few words on an ``arch`` user attr for the lineage picture (``16×16 G4 D3``)."""
        return ""

    def action_label(self, action: dict, parent_arch: dict | None) -> str:
        """A short label for people (run names, tables); ``parent_arch`` is None for a root."""
        return ",".join(f"{k}={v}" for k, v in action.items())


_SPACES: dict[str, type[Space]] = {}


def register_space(cls: type[Space]) -> type[Space]:
    _SPACES[cls.name] = cls
    return cls


def _import_builtin_spaces() -> None:
    # Importing a family's package runs its @register_space line.
    from genas.spaces import dggan, progan  # noqa: F401


def list_spaces() -> list[str]:
    _import_builtin_spaces()
    return sorted(_SPACES)


def get_space(name: str) -> Space:
    _import_builtin_spaces()
    if name not in _SPACES:
        raise GenasError(f"unknown space {name!r}; use one of {', '.join(sorted(_SPACES))}")
    return _SPACES[name]()


def generator_from_state(config: dict, tensors: Tensors) -> Generator:
    """Rebuild any family's generator from its saved state (the config names the space)."""
    space = config.get("space")
    if not isinstance(space, str):
        raise GenasError("checkpoint config has no 'space'; it was not written by genas")
    return get_space(space).generator_cls.from_state(config, tensors)
