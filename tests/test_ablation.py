"""Module switches as an ablation: on/off means, signed so that a positive gain means the module helped."""
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from genas.report.ablation import switch_effects, switches

SWITCH = CategoricalDistribution((False, True))


def _trial(value, **params):
    dists = {k: SWITCH if isinstance(v, bool) else FloatDistribution(0, 1) for k, v in params.items()}
    return create_trial(value=value, params=params, distributions=dists)


def test_only_true_false_categoricals_are_switches():
    t = create_trial(value=1.0, params={"use_a": True, "lr": 0.1, "kind": "x"},
                     distributions={"use_a": SWITCH, "lr": FloatDistribution(0, 1),
                                    "kind": CategoricalDistribution(("x", "y"))})
    assert switches([t]) == ["use_a"]


@pytest.mark.parametrize("direction, gain", [(StudyDirection.MINIMIZE, 2.0), (StudyDirection.MAXIMIZE, -2.0)])
def test_gain_is_signed_by_direction(direction, gain):
    trials = [_trial(1.0, use_a=True, lr=0.1), _trial(2.0, use_a=True, lr=0.2),
              _trial(3.0, use_a=False, lr=0.3), _trial(4.0, use_a=False, lr=0.4),
              create_trial(state=TrialState.FAIL, params={"use_a": True}, distributions={"use_a": SWITCH})]
    (effect,) = switch_effects(trials, direction)
    assert (effect.on_count, effect.off_count, effect.on_mean, effect.off_mean) == (2, 2, 1.5, 3.5)
    assert effect.gain == gain
    assert (effect.on_best, effect.off_best) == ((1.0, 3.0) if direction == StudyDirection.MINIMIZE else (2.0, 4.0))


def test_one_sided_switch_has_no_gain():
    (effect,) = switch_effects([_trial(1.0, use_a=True)], StudyDirection.MINIMIZE)
    assert effect.off_count == 0 and effect.gain is None
