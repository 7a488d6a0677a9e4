"""mspgsen through the CLI: a tiny TPE search on the 8x8 digits runs the source's configuration
first and registers a champion that samples."""
import optuna
from click.testing import CliRunner
from optuna.trial import TrialState

from genas.cli import cli
from genas.spaces import get_space
from genas.spaces.mspgsen.space import BALANCER_ATTR, MODULES


def test_tiny_mspgsen_search_registers_a_champion_that_samples(genas_home):
    runner = CliRunner()
    result = runner.invoke(cli, ["search", "mspgsen", "--budget", "tiny", "--trials", "2", "--dataset", "digits",
                                 "--study-name", "msp"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    study = optuna.load_study(study_name="msp", storage=f"sqlite:///{genas_home / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2
    first = min(study.trials, key=lambda t: t.number)
    source, base = get_space("mspgsen").initial_trials("tiny")
    assert first.params == source and first.user_attrs["initial"] is True  # the method as written runs first
    second = next(t for t in study.trials if t.number == first.number + 1)
    assert second.params == base and second.user_attrs["modules"]["gctdrn"] is False  # then its baseline
    assert first.user_attrs["modules"]["apfl_meta"] and first.user_attrs["modules"]["balance_decay_ema"]
    assert BALANCER_ATTR in first.user_attrs and first.user_attrs["balancer"]["warm_from"] is None
    for t in complete:
        assert set(MODULES) <= set(t.params)  # the switches are trial params: the study is an ablation
        assert set(t.user_attrs["modules"]) >= set(MODULES) and t.user_attrs["arch"]["resolution"] == 8
        assert ("balancer" in t.user_attrs) == t.params["balance"] and ("apfl" in t.user_attrs) == t.params["apfl"]
    assert "registered genas-msp" in result.output
    out = genas_home.parent / "grid.png"
    sampled = runner.invoke(cli, ["sample", "models:/genas-msp@champion", "-n", "4", "-o", str(out), "--seed", "1"])
    assert sampled.exit_code == 0, sampled.output + repr(sampled.exception)
    assert out.stat().st_size > 0
