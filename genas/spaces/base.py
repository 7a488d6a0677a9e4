"""The contracts every family follows: a Space suggests and trains, a Generator samples.

A family lives wholly under ``genas/spaces/<name>/`` and joins the registry with
``@register_space``. The search, the evaluators and the registry only ever see these types.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol, runtime_checkable

import optuna
import torch

from genas.data import Dataset
from genas.errors import GenasError

if TYPE_CHECKING:
    import numpy as np

BUDGETS = ("tiny", "small", "full")

Tensors = dict[str, torch.Tensor]


@runtime_checkable
class Generator(Protocol):
    """What every trained family hands back.

    Image generators (the default) sample uint8 images. A generator with the class attribute
    ``outputs = "parameters"`` (pdiff) samples float parameter vectors [n, P] instead and also
    offers ``sample_models(n, seed) -> list[torch.nn.Module]``: ready models with those parameters.
    """

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
    options: dict[str, Any] = field(default_factory=dict)  # the space's options, resolved (defaults filled in)
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


def outputs_of(generator: object) -> str:
    """``"images"`` or ``"parameters"``: what a generator's ``sample`` returns."""
    return getattr(generator, "outputs", "images")


class Space(ABC):
    """A family of generators: suggest a config for a trial, train it, hand back a Generator.

    Metrics: the image evaluators (``swd``, ``fid`` …) score any image generator. A space may
    also score trials itself: it names those metrics in ``own_metrics`` with their direction
    and computes them in :meth:`score`; a single-objective study on one of them is pruned on
    ``<metric>_quick``, which the space then reports itself.
    """

    name: ClassVar[str]
    generator_cls: ClassVar[type]
    default_sampler: ClassVar[str] = "tpe"
    default_pruner: ClassVar[str] = "median"
    #: sampler names this space works with; None means any
    samplers: ClassVar[tuple[str, ...] | None] = None
    #: the metrics this space computes itself (name -> "minimize" or "maximize")
    own_metrics: ClassVar[dict[str, str]] = {}
    #: the objectives of a study that names none
    default_objectives: ClassVar[tuple[str, ...]] = ("swd",)
    #: whether the image evaluators apply (False for a space whose generator samples parameters)
    scores_images: ClassVar[bool] = True
    #: study-level settings the search does not tune (name -> default), set with ``--set KEY=VALUE``
    options: ClassVar[dict[str, Any]] = {}
    #: per budget: plain dict of sizes (images to train, batch, eval samples …)
    budgets: ClassVar[dict[str, dict]] = {}
    #: trial user attrs shown as extra leaderboard / ``study show`` columns (attr name -> column label)
    leaderboard_columns: ClassVar[dict[str, str]] = {}

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

    def resolve_options(self, given: dict[str, Any]) -> dict[str, Any]:
        """The space's ``options`` with the user's values (``--set KEY=VALUE``), typed like the defaults."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(f"{k}={v}" for k, v in self.options.items()) or "none"
            raise GenasError(f"space {self.name} has no option {', '.join(unknown)}; its options (defaults): {known}")
        resolved = dict(self.options)
        for key, value in given.items():
            resolved[key] = _typed(key, value, self.options[key])
        return resolved

    def check(self, dataset: Dataset, options: dict[str, Any], *, budget: str | None = None,
              objectives: tuple[str, ...] = ()) -> None:
        """Raise GenasError when a study of this space cannot run (called before the study starts).

        ``options`` are resolved; ``budget`` and ``objectives`` are the study's (None / empty when unknown).
        """

    def final_metrics(self, objectives: tuple[str, ...], dataset: Dataset) -> list[str]:
        """Every metric a finished trial logs: its objectives and what is always worth seeing."""
        return list(dict.fromkeys((["swd"] if self.scores_images else []) + list(objectives)))

    def score(self, generator: Generator, names: list[str], ctx: TrialContext) -> dict[str, float]:
        """The metrics of ``names`` (all in ``own_metrics``) for a trained generator."""
        raise GenasError(f"space {self.name} computes no metrics of its own; asked for {', '.join(names)}")

    def direction(self, metric: str) -> str:
        return self.own_metrics.get(metric, "minimize")

    def initial_trials(self, budget: str) -> list[dict]:
        """Params of the trials every new study runs first (a source's own configuration)."""
        return []

    def default_trials(self, budget: str, options: dict[str, Any], resolution: int) -> int:
        """How many trials ``genas search`` runs when ``--trials`` is not given."""
        return int(self.budget(budget)["trials"])

    def trial_images(self, budget: str, options: dict[str, Any], resolution: int) -> int:
        """The images (or steps) one trial trains on: the step axis its reports use."""
        return int(options.get("images") or self.budget(budget)["images_per_trial"])


class GrowableSpace(Space):
    """A space whose candidates grow from a parent, searched generation by generation (a beam).

    ``genas/search/beam.py`` plans the generations from these hooks: generation 0 is
    :meth:`root_actions`; generation g holds :meth:`child_actions` of each of the ``k`` best
    candidates of generation g-1; when :meth:`beam` says ``finish``, one generation more holds
    the :meth:`finish_action` of the best candidate of the last planned one. A planned candidate
    is a dict of Optuna params (the growth action and the lineage's hyperparameters); the search
    hands them to :meth:`suggest`.
    """

    #: the fixed categorical choices of each planned action parameter (Optuna needs static choices)
    action_params: ClassVar[dict[str, tuple]] = {}

    @abstractmethod
    def beam(self, options: dict[str, Any], budget: str, resolution: int) -> dict:
        """``{"k": parents kept per generation, "generations": planned generations after the roots,
        "finish": whether the best of the last planned generation trains on in one generation more}``."""

    @abstractmethod
    def root_actions(self, options: dict[str, Any], budget: str, resolution: int,
                     rng: "np.random.Generator") -> list[dict]:
        """Generation 0: the planned params of each root."""

    @abstractmethod
    def child_actions(self, parent_params: dict, parent_arch: dict, generations_left: int | None,
                      options: dict[str, Any], budget: str, resolution: int,
                      rng: "np.random.Generator") -> list[dict]:
        """The planned params of one parent's children (``generations_left``: planned generations
        after them, None past the plan)."""

    def finish_action(self, parent_params: dict, parent_arch: dict, options: dict[str, Any], budget: str,
                      resolution: int) -> dict:
        """The planned params of the finalist's one child (the best of the last planned generation)."""
        raise NotImplementedError(f"space {self.name} plans no finishing generation; its beam() says finish")

    def arch_summary(self, arch: dict) -> str:
        """A few words on an ``arch`` user attr for the lineage picture (``16×16 G4 D3``)."""
        return ""

    def action_label(self, action: dict, parent_arch: dict | None) -> str:
        """A short label for people (run names, tables); ``parent_arch`` is None for a root."""
        return ",".join(f"{k}={v}" for k, v in action.items())


def _typed(key: str, value: Any, default: Any) -> Any:
    """``value`` (a CLI string, or already typed) as the type of ``default``."""
    if default is None or not isinstance(value, str):
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        return type(default)(value)
    except ValueError:
        raise GenasError(f"option {key}={value!r} is not a {type(default).__name__}; e.g. {key}={default}") from None


_SPACES: dict[str, type[Space]] = {}


def register_space(cls: type[Space]) -> type[Space]:
    _SPACES[cls.name] = cls
    return cls


def _import_builtin_spaces() -> None:
    # Importing a family's package runs its @register_space line.
    from genas.spaces import dcgan  # noqa: F401
    from genas.spaces import dggan  # noqa: F401
    from genas.spaces import mspgsen  # noqa: F401
    from genas.spaces import pdiff  # noqa: F401
    from genas.spaces import progan  # noqa: F401
    from genas.spaces import san  # noqa: F401
    from genas.spaces import snn  # noqa: F401


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
