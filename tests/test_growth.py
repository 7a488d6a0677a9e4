"""The beam behind dggan: generations, ranking within a generation, the control child, atomic slots."""
import json
import threading

import numpy as np
import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from genas.errors import GenasError
from genas.search.beam import MAX_ATTEMPTS, PLAN_ATTR, SLOT_ATTR, Beam
from genas.search.growth import GrowthSampler
from genas.search.locks import StudyLock
from genas.search.ranking import pareto_fronts, rank_trials
from genas.spaces.base import GrowableSpace


class ToySpace(GrowableSpace):
    """Roots 0..R-1; every parent gets a control and two growth children; arch = the lineage's path."""

    name = "toy"
    generator_cls = object
    action_params = {"action": ("root", "train", "grow"), "channels": tuple(range(100))}
    budgets = {"tiny": {}}

    def __init__(self, roots: int = 3, k: int = 2, generations: int = 2, finish: bool = False) -> None:
        self.roots, self.k, self.generations, self.finish = roots, k, generations, finish

    def beam(self, options, budget, resolution):
        return {"k": self.k, "generations": self.generations, "finish": self.finish}

    def finish_action(self, parent_params, parent_arch, options, budget, resolution):
        return {"action": "train", "channels": parent_params["channels"]}

    def root_actions(self, options, budget, resolution, rng):
        return [{"action": "root", "channels": c} for c in range(self.roots)]

    def child_actions(self, parent_params, parent_arch, generations_left, options, budget, resolution, rng):
        grows = rng.choice(50, size=2, replace=False) + 10
        return [{"action": "train", "channels": parent_params["channels"]}] + \
            [{"action": "grow", "channels": int(c)} for c in grows]

    def action_label(self, action, parent_arch):
        return f"{action['action']} {action['channels']}"

    def suggest(self, trial, ctx):
        return {name: trial.suggest_categorical(name, choices) for name, choices in self.action_params.items()}

    def train(self, config, ctx):
        raise NotImplementedError


def make_study(space: ToySpace, seed: int = 0, name: str = "toy") -> tuple[optuna.Study, GrowthSampler]:
    beam = Beam(space, {}, "tiny", 32, seed, [StudyDirection.MINIMIZE])
    sampler = GrowthSampler(beam, StudyLock(None, name), poll_s=0.01)
    return optuna.create_study(sampler=sampler, study_name=name), sampler


def run_one(study: optuna.Study, sampler: GrowthSampler, score, state=TrialState.COMPLETE) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    sampler.claim(trial)
    config = {n: trial.suggest_categorical(n, c) for n, c in ToySpace.action_params.items()}
    trial.set_user_attr("arch", {"path": [config["channels"]]})
    study.tell(trial, score(trial, config) if state == TrialState.COMPLETE else None, state=state)
    return study.get_trials()[-1]


def test_generations_expand_the_top_k_of_the_last_generation_only():
    space = ToySpace(roots=3, k=2, generations=3)
    study, sampler = make_study(space)
    # roots score 5, 1, 3; gen-1 children all score worse (10+) than the best root, gen 2 better again
    scores = {0: lambda t, c: [5.0, 1.0, 3.0][c["channels"]], 1: lambda t, c: 10.0 + c["channels"] / 100,
              2: lambda t, c: 0.5 + c["channels"] / 1000}
    done = [run_one(study, sampler, lambda t, c: scores[min(t.user_attrs["generation"], 2)](t, c))
            for _ in range(3 + 6 + 6)]
    gens = [t.user_attrs["generation"] for t in done]
    assert gens == [0] * 3 + [1] * 6 + [2] * 6
    roots = done[:3]
    assert [json.loads(t.user_attrs[PLAN_ATTR])["channels"] for t in roots] == [0, 1, 2]  # roots differ
    gen1, gen2 = done[3:9], done[9:]
    assert {t.user_attrs["parent"] for t in gen1} == {roots[1].number, roots[2].number}  # the 2 best roots
    best_gen1 = sorted(gen1, key=lambda t: (t.value, t.number))[:2]
    # every gen-1 child is worse than root 1 (value 1.0): a history-wide ranking would pick root 1 again
    assert {t.user_attrs["parent"] for t in gen2} == {t.number for t in best_gen1}
    assert gen2[0].user_attrs["genas:top_k"] == [t.number for t in best_gen1]
    for generation in (gen1, gen2):  # each parent has exactly one control child, first
        for parent in {t.user_attrs["parent"] for t in generation}:
            kids = [t for t in generation if t.user_attrs["parent"] == parent]
            assert [json.loads(k.user_attrs[PLAN_ATTR])["action"] for k in kids] == ["train", "grow", "grow"]
            assert len({k.user_attrs[SLOT_ATTR] for k in kids}) == 3
    pairs = [(t.user_attrs["parent"], t.user_attrs[PLAN_ATTR]) for t in done]
    assert len(pairs) == len(set(pairs))  # no (parent, action) twice


def test_the_beam_is_finished_after_its_planned_generations_only():
    space = ToySpace(roots=2, k=1, generations=2)
    study, sampler = make_study(space)
    finished = []
    for _ in range(2 + 3 + 3 + 1):  # roots, generations 1 and 2, then one trial past the plan
        finished.append(sampler.beam.finished(study.get_trials()))
        run_one(study, sampler, lambda t, c: float(c["channels"]))
    assert finished == [False] * 8 + [True]
    assert study.trials[-1].user_attrs["generation"] == 3  # given more trials, the beam goes on


def test_the_finalist_alone_trains_on_after_the_planned_generations():
    space = ToySpace(roots=2, k=2, generations=1, finish=True)
    study, sampler = make_study(space)
    finished = []
    for _ in range(2 + 6 + 1 + 1):  # roots, generation 1, the finishing generation, one trial past the plan
        finished.append(sampler.beam.finished(study.get_trials()))
        run_one(study, sampler, lambda t, c: float(c["channels"]) + (0.5 if t.user_attrs["generation"] == 1 else 0))
    assert finished == [False] * 9 + [True]
    trials = study.get_trials()
    gen1, finalist = trials[2:8], trials[8]
    best = min(gen1, key=lambda t: (t.value, t.number))
    assert finalist.user_attrs["generation"] == 2 and finalist.user_attrs["parent"] == best.number
    assert json.loads(finalist.user_attrs[PLAN_ATTR]) == {"action": "train",
                                                           "channels": json.loads(best.user_attrs[PLAN_ATTR])["channels"]}
    assert finalist.user_attrs["action"].startswith("finalist: train")  # run names and tables say so
    assert [t.user_attrs["parent"] for t in trials if t.user_attrs["generation"] == 3] == [finalist.number]


def _done(number, value, **attrs):
    t = create_trial(value=value, user_attrs={"full_resolution": True, **attrs})
    t.number = number
    return t


@pytest.mark.parametrize("paired_parent, champion", [(19.0, 2), (18.0, 1), (18.5, 2), (None, 1)])
def test_the_finalist_and_its_parent_are_chosen_between_on_the_finalists_draw(paired_parent, champion):
    # the finalist's own 18.5 loses to its parent's 18.4 on separate draws; the paired score
    # (the parent re-scored on the finalist's noise) decides between the two, a tie to the finalist
    from genas.cli.display import champion_caption
    from genas.registry.promote import champion_candidates, champion_number

    finalist = {"finalist": True, "parent": 1}
    if paired_parent is not None:
        finalist["parent_values"] = [paired_parent]
    trials = [_done(0, 30.0), _done(1, 18.4, parent=0), _done(2, 18.5, **finalist)]
    candidates = champion_candidates(trials, [StudyDirection.MINIMIZE])
    assert rank_trials(candidates, [StudyDirection.MINIMIZE])[0].number == champion
    # only the pair's loser drops out; without a paired score, neither does
    assert {t.number for t in candidates} == ({0, champion} if paired_parent is not None else {0, 1, 2})
    assert champion_number(trials, [StudyDirection.MINIMIZE]) == champion
    if champion == 2:  # the leaderboard's first row is the parent: its caption says why the star is not there
        caption = champion_caption(trials[2], trials[1])
        assert "trial 2" in caption and "18.500" in caption and f"{paired_parent:.3f}" in caption
    # a better trial outside the pair still wins, and a maximised objective turns the comparison round
    trials.append(_done(3, 10.0))
    assert rank_trials(champion_candidates(trials, [StudyDirection.MINIMIZE]), [StudyDirection.MINIMIZE])[0].number == 3
    if paired_parent is not None:
        maxed = champion_candidates(trials[:3], [StudyDirection.MAXIMIZE])
        assert {1, 2} - {t.number for t in maxed} == ({1} if paired_parent < 18.5 else {2} if paired_parent > 18.5 else {1})


@pytest.mark.parametrize("draws, champion", [
    ([[18.5, 18.0], [18.2, 18.1], [18.3, 18.2]], 1),  # the parent better on every draw: it displaces the finalist
    ([[18.5, 18.0], [18.2, 18.4], [18.3, 18.2]], 2),  # better on two of three: noise, the finalist stays
    ([[18.5, 18.0], [18.2, 18.2], [18.3, 18.2]], 2),  # a tie on one draw is no win
])
def test_the_parent_displaces_the_finalist_only_when_better_on_every_paired_draw(draws, champion):
    from genas.cli.display import champion_caption
    from genas.registry.promote import champion_number, paired_losers

    finalist = {"finalist": True, "parent": 1, "parent_values": [draws[0][1]], "paired_draws": draws}
    trials = [_done(0, 30.0), _done(1, 18.4, parent=0), _done(2, 18.5, **finalist)]
    assert champion_number(trials, [StudyDirection.MINIMIZE]) == champion
    caption = champion_caption(trials[2], trials[1]) if champion == 2 else champion_caption(trials[1], trials[2])
    assert "same 3 draws" in caption and "18.500 / 18.200 / 18.300" in caption
    assert " / ".join(f"{p:.3f}" for _, p in draws) in caption
    # maximised, the same numbers turn round: the parent is lower on the first draw, so it cannot win every draw
    assert paired_losers(trials, [StudyDirection.MAXIMIZE]) == {1}


def test_the_plan_is_the_same_for_every_worker_and_params_follow_it():
    a, b = make_study(ToySpace(), seed=3, name="a"), make_study(ToySpace(), seed=3, name="b")
    plans = []
    for study, sampler in (a, b):
        done = [run_one(study, sampler, lambda t, c: float(c["channels"] % 7)) for _ in range(9)]
        plans.append([(t.user_attrs[SLOT_ATTR], t.user_attrs[PLAN_ATTR]) for t in done])
        for t in done:
            assert t.params["channels"] == json.loads(t.user_attrs[PLAN_ATTR])["channels"]
    assert plans[0] == plans[1]


def test_a_busy_generation_waits_and_failed_slots_are_retried_once():
    study, sampler = make_study(ToySpace(roots=2, k=1))
    beam = sampler.beam
    first = study.ask()
    sampler.claim(first)
    second = study.ask()
    sampler.claim(second)
    assert beam.next_slot(study.get_trials()) is None  # both roots run: the next trial must wait
    study.tell(first, state=TrialState.FAIL)
    retry = study.ask()
    sampler.claim(retry)  # the failed root's slot is free again
    assert retry.user_attrs[SLOT_ATTR] == first.user_attrs[SLOT_ATTR]
    study.tell(retry, state=TrialState.FAIL)
    assert MAX_ATTEMPTS == 2 and beam.next_slot(study.get_trials()) is None  # given up; root 1 still runs

    waiter_slot = []

    def waiter():
        trial = study.ask()
        sampler.claim(trial)  # blocks until root 1 finishes and generation 1 is planned
        waiter_slot.append(trial.user_attrs[SLOT_ATTR])

    thread = threading.Thread(target=waiter)
    thread.start()
    thread.join(0.2)
    assert thread.is_alive() and not waiter_slot
    second.set_user_attr("arch", {"path": [1]})
    study.tell(second, 2.0)
    thread.join(30)  # returns as soon as the waiter has its slot (about 3 s: it polls and checks for dead trials)
    assert waiter_slot == ["1/0"]


def test_a_generation_that_completes_nothing_stops_the_beam_with_the_reasons():
    study, sampler = make_study(ToySpace(roots=1, k=1))
    for _ in range(MAX_ATTEMPTS):
        trial = study.ask()
        sampler.claim(trial)
        trial.set_user_attr("fail_reason", "RuntimeError: out of memory")
        study.tell(trial, state=TrialState.FAIL)
    with pytest.raises(GenasError, match="no complete candidate.*out of memory"):
        sampler.claim(study.ask())


def _brute_fronts(values: np.ndarray) -> np.ndarray:
    n = len(values)
    fronts, remaining, level = np.full(n, -1), set(range(n)), 0
    while remaining:
        front = {i for i in remaining if not any(np.all(values[j] <= values[i]) and np.any(values[j] < values[i])
                                                  for j in remaining if j != i)}
        for i in front:
            fronts[i] = level
        remaining -= front
        level += 1
    return fronts


@pytest.mark.parametrize("objectives", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_pareto_fronts_match_the_definition(objectives, seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(60, objectives)).astype(float)  # many ties
    assert np.array_equal(pareto_fronts(values), _brute_fronts(values))


def test_rank_trials_front_first_then_first_objective():
    trials = [create_trial(values=v, state=TrialState.COMPLETE) for v in ([1, 5], [2, 2], [3, 3], [0, 9])]
    for i, t in enumerate(trials):
        t.number = i
    ranked = [t.number for t in rank_trials(trials, [StudyDirection.MINIMIZE] * 2)]
    assert ranked == [3, 0, 1, 2]  # [3, 3] is dominated by [2, 2]
    single = [create_trial(value=v, state=TrialState.COMPLETE) for v in (1.0, 3.0, 2.0, 3.0)]
    for i, t in enumerate(single):
        t.number = i
    assert [t.number for t in rank_trials(single, [StudyDirection.MAXIMIZE])] == [1, 3, 2, 0]
