"""The beam of a growable space: its generations, planned from the study's own trials.

Generation 0 is the space's roots. Generation g is planned once generation g-1 is finished: the
``k`` best of its complete candidates (Pareto front, then the first objective) each get the
children the space proposes. When the space asks for it (``finish``), one generation follows the
planned ones: the finalist, the best of the last planned generation, trains on alone (the space's
:meth:`finish_action`), so the search's images go to choosing the model and the finishing images to
the one model chosen. The finalist's trial scores its parent again on its own draw (the same latent
noise, real images and SWD directions) and both on ``PAIRED_DRAWS - 1`` latent draws more, so that
the choice between the two, which their separate scores leave to sampling noise, is a paired
comparison (``genas/registry/promote.py``). Each planned candidate is a *slot* ``g/i``; a trial
takes the first free slot (``genas/search/growth.py`` does it under a study-wide lock, so no two
workers take the same one) and records it in its user attrs. A slot is free while no trial holds it
(RUNNING, WAITING, COMPLETE or PRUNED) and fewer than ``MAX_ATTEMPTS`` trials of it failed; a
generation is finished when none of its slots is free or running. The plan is a pure function of
the study's seed and the results of earlier generations, so every worker computes the same one, and
a study resumed later picks up where it stopped. A search without a trial count ends with the
planned ``generations`` and the finishing one (``finished``); given more trials, the beam goes on
the same way past its plan, without the reachability constraint.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from genas.errors import GenasError
from genas.search.ranking import rank_trials
from genas.spaces.base import GrowableSpace

PLAN_ATTR = "genas:plan"  # JSON of the planned params
SLOT_ATTR = "genas:slot"  # "g/i"
GENERATION_ATTR = "generation"
PARENT_ATTR = "parent"
ACTION_ATTR = "action"
TOP_K_ATTR = "genas:top_k"  # the generation's parents, best first
FINALIST_ATTR = "finalist"  # True on the finishing generation's one trial
PARENT_VALUES_ATTR = "parent_values"  # the finalist's parent re-scored on the finalist's draw
PAIRED_DRAWS_ATTR = "paired_draws"  # [[finalist, parent], ...] on the first objective, one pair per latent draw
PAIRED_DRAWS = 3  # the finalist's own draw and two more: the parent must win all three to displace it
MAX_ATTEMPTS = 2  # a slot whose trial failed is tried once more, then given up
_LIVE = (TrialState.RUNNING, TrialState.WAITING, TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class Slot:
    generation: int
    index: int
    parent: int | None
    params: dict[str, Any]
    parents: tuple[int, ...]  # the generation's parents, best first

    @property
    def key(self) -> str:
        return f"{self.generation}/{self.index}"


class Beam:
    """Plans the generations of one study (see the module docstring)."""

    def __init__(self, space: GrowableSpace, options: dict[str, Any], budget: str, resolution: int, seed: int,
                 directions: Sequence[StudyDirection]) -> None:
        self.space, self.options, self.budget, self.resolution = space, options, budget, resolution
        self.seed, self.directions = seed, list(directions)
        settings = space.beam(options, budget, resolution)
        self.k, self.generations = int(settings["k"]), int(settings["generations"])
        self.finish = bool(settings.get("finish", False))
        self.last = self.generations + self.finish  # the last generation of the plan
        self._plans: dict[tuple[int, tuple[int, ...]], list[Slot]] = {}
        # the first generation not yet seen finished, and its parents: a finished generation stays
        # finished (COMPLETE, PRUNED and a slot's last failure are final), so walks start here
        self._unfinished: tuple[int, list[FrozenTrial]] = (0, [])

    def rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, *keys])

    def plan(self, generation: int, parents: Sequence[FrozenTrial]) -> list[Slot]:
        """The slots of ``generation``: the roots, or the children of ``parents`` (best first)."""
        numbers = tuple(p.number for p in parents)
        cached = self._plans.get((generation, numbers))
        if cached is not None:
            return cached
        if generation == 0:
            params = self.space.root_actions(self.options, self.budget, self.resolution, self.rng(0))
            slots = [Slot(0, i, None, p, ()) for i, p in enumerate(params)]
        elif self.finish and generation == self.last:
            finalist = parents[0]
            params = self.space.finish_action(json.loads(finalist.user_attrs[PLAN_ATTR]), finalist.user_attrs["arch"],
                                              self.options, self.budget, self.resolution)
            slots = [Slot(generation, 0, finalist.number, params, numbers)]
        else:
            left = self.generations - generation if generation <= self.generations else None  # None: past the plan
            slots = []
            for parent in parents:
                parent_params = json.loads(parent.user_attrs[PLAN_ATTR])
                for p in self.space.child_actions(parent_params, parent.user_attrs["arch"], left, self.options,
                                                  self.budget, self.resolution, self.rng(generation, parent.number)):
                    slots.append(Slot(generation, len(slots), parent.number, p, numbers))
        self._plans[(generation, numbers)] = slots
        return slots

    def next_slot(self, trials: Sequence[FrozenTrial]) -> Slot | None:
        """The first free slot of the current generation, or None when every slot is taken and
        some are still running (wait for them)."""
        return self._current(trials)[1]

    def finished(self, trials: Sequence[FrozenTrial]) -> bool:
        """Whether every planned generation is done: a further trial would go past the plan."""
        return self._current(trials, stop_past_plan=True)[0] > self.last

    def _current(self, trials: Sequence[FrozenTrial], stop_past_plan: bool = False) -> tuple[int, Slot | None]:
        """The current generation and its first free slot (None: all taken, some running)."""
        holders: dict[str, list[FrozenTrial]] = defaultdict(list)
        for t in trials:
            if SLOT_ATTR in t.user_attrs:
                holders[t.user_attrs[SLOT_ATTR]].append(t)
        generation, parents = self._unfinished
        while True:
            if stop_past_plan and generation > self.last:
                return generation, None
            slots = self.plan(generation, parents)
            if not slots:
                raise GenasError(f"generation {generation} of the beam has no candidate to train: its parents "
                                 f"{[p.number for p in parents]} can take no action; start a new study with "
                                 "more generations or other widths / kernels (--set)")
            running = False
            for slot in slots:
                held = holders.get(slot.key, [])
                if any(t.state in _LIVE for t in held):
                    running |= any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in held)
                elif len(held) < MAX_ATTEMPTS:
                    return generation, slot
            if running:
                return generation, None
            complete = [t for s in slots for t in holders.get(s.key, []) if t.state == TrialState.COMPLETE]
            if not complete:
                reasons = {t.user_attrs.get("fail_reason", t.state.name) for s in slots for t in holders.get(s.key, [])}
                raise GenasError(f"generation {generation} of the beam finished with no complete candidate "
                                 f"({'; '.join(sorted(str(r)[:120] for r in reasons))}); fix the cause and start a "
                                 "new study")
            finalist_next = self.finish and generation + 1 == self.last
            parents = rank_trials(complete, self.directions)[: 1 if finalist_next else self.k]
            generation += 1
            self._unfinished = (generation, parents)

    def attrs(self, slot: Slot, trials: Sequence[FrozenTrial]) -> dict[str, Any]:
        """The user attrs that record ``slot`` on the trial taking it."""
        parent_arch = None
        if slot.parent is not None:
            parent_arch = next(t.user_attrs["arch"] for t in trials if t.number == slot.parent)
        label = self.space.action_label(slot.params, parent_arch)
        finalist = self.finish and slot.generation == self.last
        attrs = {GENERATION_ATTR: slot.generation, SLOT_ATTR: slot.key, PARENT_ATTR: slot.parent,
                 ACTION_ATTR: f"finalist: {label}" if finalist else label,
                 PLAN_ATTR: json.dumps(slot.params, sort_keys=True), TOP_K_ATTR: list(slot.parents)}
        if finalist:
            attrs[FINALIST_ATTR] = True
        return attrs
