"""The top-k growth sampler: parents only from the k best complete trials, fresh actions, roots first."""
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from genas.search.growth import GrowthSampler, rank_trials
from genas.spaces.base import GrowableSpace


class ToySpace(GrowableSpace):
    name = "toy"
    generator_cls = object
    action_params = {"action": ("root", "up"), "channels": (1, 2, 3)}
    budgets = {"tiny": {"top_k": 2}}

    def root_actions(self, resolution, budget):
        return [{"action": "root", "channels": c} for c in (1, 2)]

    def next_actions(self, arch, resolution, budget):
        return [{"action": "up", "channels": c} for c in (1, 2, 3)]

    def suggest(self, trial, ctx):
        return {name: trial.suggest_categorical(name, choices) for name, choices in self.action_params.items()}

    def train(self, config, ctx):
        raise NotImplementedError


def _complete(value, number_hint):
    return create_trial(value=value, state=TrialState.COMPLETE, user_attrs={"arch": {"id": number_hint}})


def test_first_trial_is_a_root_and_params_follow_the_plan():
    space = ToySpace()
    study = optuna.create_study(sampler=GrowthSampler(space, 32, "tiny", k=2, seed=0))
    trial = study.ask()
    assert trial.user_attrs["parent"] is None
    config = space.suggest(trial, None)
    assert config["action"] == "root"
    assert f"channels={config['channels']}" in trial.user_attrs["action"]


@pytest.mark.parametrize("seed", range(5))
def test_parents_come_only_from_the_top_k(seed):
    space = ToySpace()
    study = optuna.create_study(sampler=GrowthSampler(space, 32, "tiny", k=2, seed=seed))
    for i, value in enumerate([5.0, 1.0, 3.0, 0.5, 9.0]):
        study.add_trial(_complete(value, i))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"arch": {}}))  # never a parent
    best_two = {3, 1}  # values 0.5 and 1.0
    parents = []
    for _ in range(6):  # 2 parents x 3 actions: every fresh action of the top-k, no repeats
        trial = study.ask()
        parents.append(trial.user_attrs["parent"])
        config = space.suggest(trial, None)
        assert config["action"] == "up"
        study.tell(trial, state=TrialState.PRUNED)  # pruned children do not join the history
    assert set(parents) == best_two
    assert sorted(parents).count(1) == 3 and sorted(parents).count(3) == 3


def test_top_k_follows_new_results():
    space = ToySpace()
    sampler = GrowthSampler(space, 32, "tiny", k=1, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.add_trial(_complete(2.0, 0))
    assert [t.number for t in sampler.top_k(study)] == [0]
    study.add_trial(_complete(1.0, 1))
    assert [t.number for t in sampler.top_k(study)] == [1]
    assert study.ask().user_attrs["parent"] == 1


def test_rank_trials_multi_objective_pareto_first():
    trials = [create_trial(values=v, state=TrialState.COMPLETE) for v in ([1, 5], [2, 2], [3, 3], [0, 9])]
    for i, t in enumerate(trials):
        t.number = i
    dirs = [optuna.study.StudyDirection.MINIMIZE] * 2
    ranked = [t.number for t in rank_trials(trials, dirs)]
    assert set(ranked[:3]) == {0, 1, 3} and ranked[3] == 2  # [3, 3] is dominated by [2, 2]


def test_inner_sampler_handles_other_params():
    space = ToySpace()
    study = optuna.create_study(sampler=GrowthSampler(space, 32, "tiny", k=2, seed=0))
    values = set()
    for _ in range(5):
        trial = study.ask()
        values.add(trial.suggest_float("lr", 1e-4, 1e-2, log=True))
        study.tell(trial, 1.0)
    assert len(values) == 5 and all(1e-4 <= v <= 1e-2 for v in values)
