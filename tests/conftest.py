"""Fixtures, and how the suite runs in parallel.

``pytest`` runs the test files on as many pytest-xdist workers as the machine has cores
(``-n auto`` in pyproject.toml): whole files go to one worker each, the slow ones first, and the
files that read the session's tiny study all go to the same worker, which trains it once.
"""
import os
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # The workers share the cores, they and the processes they start, or OpenMP's spin-waits fight
    # over every core. Set before torch is imported, so that this process's torch and every child's
    # take it.
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import pytest  # noqa: E402
import torch  # noqa: E402
from click.testing import CliRunner  # noqa: E402

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

# The files whose tests take ``tiny_study`` or ``in_tiny_study``. The scheduler sees node ids only,
# not fixtures, so they are named here; collection refuses a file that takes the study unnamed.
TINY_STUDY_FILES = frozenset({"test_browser.py", "test_dashboard.py", "test_e2e.py", "test_report.py",
                              "test_serve.py"})
TINY_STUDY_SCOPE = "tiny-study"


def _uses_tiny_study(item: pytest.Item) -> bool:
    return bool({"tiny_study", "in_tiny_study"} & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests (real processes, servers, a browser, the tiny study) first, each file's tests
    together, so that no slow file is left to run alone at the end."""
    for item in items:
        if _uses_tiny_study(item):
            if item.path.name not in TINY_STUDY_FILES:
                raise pytest.UsageError(f"{item.path.name} takes the tiny study: add it to TINY_STUDY_FILES "
                                        "in tests/conftest.py")
            item.add_marker(pytest.mark.slow)
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: each file's order is kept


def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201 - xdist's types
    """pytest-xdist's file-by-file scheduling, with the tiny study's files as one unit."""
    from xdist.scheduler import LoadScopeScheduling

    class FilesAndTinyStudy(LoadScopeScheduling):
        # a unit per _split_scope's value, as xdist's own LoadFileScheduling overrides it
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return TINY_STUDY_SCOPE if Path(path).name in TINY_STUDY_FILES else path

    # xdist 3.8 sorts the units by test count; keep the collection's order, slow files first
    config.option.loadscopereorder = False
    return FilesAndTinyStudy(config, log)


@pytest.fixture(scope="session", autouse=True)
def isolated_genas_state(tmp_path_factory):
    """Nothing of the developer's genas state is read or written: a session genas home and cache
    (real-data statistics, pdiff's stage-1 checkpoints) stand in for ./genas-runs and $GENAS_CACHE,
    and a study storage or MLflow server named in the environment is not used."""
    root = tmp_path_factory.mktemp("genas-state")
    mp = pytest.MonkeyPatch()
    mp.setenv("GENAS_HOME", str(root / "home"))
    mp.setenv("GENAS_CACHE", str(root / "cache"))
    for var in ("GENAS_STORAGE", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        mp.delenv(var, raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny networks train faster on one thread, and a busy machine cannot stall their spin-waits.

    A module takes it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; the
    thread count is restored when the module ends.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def genas_home(tmp_path, monkeypatch):
    """A fresh genas home (Optuna SQLite, MLflow SQLite + artifacts, caches) per test."""
    home = tmp_path / "home"
    monkeypatch.setenv("GENAS_HOME", str(home))
    monkeypatch.setenv("GENAS_CACHE", str(home / "cache"))  # a test may count cache hits and misses
    monkeypatch.delenv("GENAS_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


TINY_STUDY = "dggan-mnist5k"


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """One ``genas search dggan --budget tiny`` (its whole beam) for the whole session: (home, CLI result).

    Tests that read it (end to end, report, serving, the browser) must not change its trials.
    """
    from genas.cli import cli

    home = tmp_path_factory.mktemp("e2e") / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("GENAS_HOME", str(home))
    for var in ("GENAS_STORAGE", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        mp.delenv(var, raising=False)
    mp.chdir(home.parent)
    result = CliRunner().invoke(cli, ["search", "dggan", "--budget", "tiny", "--seed", "1"])
    mp.undo()
    assert result.exit_code == 0, result.output + repr(result.exception)
    return home, result


@pytest.fixture()
def in_tiny_study(tiny_study, monkeypatch):
    """The tiny study's home as this test's genas home."""
    home, _ = tiny_study
    monkeypatch.setenv("GENAS_HOME", str(home))
    for var in ("GENAS_STORAGE", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(home.parent)
    return home
