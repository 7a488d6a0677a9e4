"""The MLflow UI as a person sees it: headless Chromium on `genas ui` over the tiny study.

Needs Debian's ``chromium`` and Playwright (the test extra). Without Chromium the test is
skipped with the install command, unless ``GENAS_REQUIRE_BROWSER=1`` (``.ci/run`` sets it, after
installing Chromium), where a missing browser fails. Screenshots go to ``test-artifacts/``.
"""
import json
import os
import re
import shutil
import sys
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from genas.registry.promote import best_trial
from servers import free_port, running

STUDY = "dggan-mnist5k"
MODEL = f"genas-{STUDY}"
ARTIFACTS = Path(os.environ.get("GENAS_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


def chromium() -> str:
    path = os.environ.get("GENAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        message = "needs Chromium and Playwright: apt-get install chromium && pip install -e '.[test]'"
        if os.environ.get("GENAS_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_mlflow_ui_shows_trials_samples_and_champion(tiny_study):
    from playwright.sync_api import sync_playwright

    executable = chromium()
    home, _ = tiny_study
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{home / 'optuna.db'}")
    trials = study.get_trials(deepcopy=False)
    best = best_trial(study)  # the champion: the best at the dataset's resolution, not Optuna's best
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running([sys.executable, "-m", "genas.cli", "ui", "--port", str(port)], f"{base}/health",
                 env={"GENAS_HOME": str(home)}):
        url = f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=genas/{STUDY}"
        experiment = json.loads(urllib.request.urlopen(url, timeout=10).read())["experiment"]["experiment_id"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)

            # the experiment lists the study's parent run; expanded, every trial under it
            page.goto(f"{base}/#/experiments/{experiment}/runs?workflowType=machine_learning")
            parent = page.locator('[role="gridcell"]', has_text=f"study {STUDY}").first
            parent.wait_for()
            parent.locator("button").first.click()
            page.get_by_text("trial-0 ·").first.wait_for()
            names = page.locator('[role="gridcell"] a').all_inner_texts()
            page.screenshot(path=str(ARTIFACTS / "mlflow-runs.png"))
            for t in trials:
                assert any(n.startswith(f"trial-{t.number} · ") for n in names), (t.number, names)

            # a trial's artifacts include its sample grid
            page.goto(f"{base}/#/experiments/{experiment}/runs/{best.user_attrs['mlflow_run_id']}/artifacts")
            page.get_by_text("samples.png").first.wait_for()
            page.get_by_text("samples.png").first.click()
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "mlflow-trial-artifacts.png"))

            # the registered model carries the champion alias on the best trial's version
            page.goto(f"{base}/#/models/{MODEL}")
            page.get_by_text("@ champion").first.wait_for()
            text = page.inner_text("body")
            page.screenshot(path=str(ARTIFACTS / "mlflow-registry.png"))
            browser.close()
    # the versions table reads "Version N … genas.trial : T … @ champion" row by row
    rows = {m.group(1): m.group(2) for m in re.finditer(r"Version\s+(\d+)(.*?)(?=Version\s+\d+|$)", text, re.S)}
    champion_rows = [v for v, row in rows.items() if re.search(r"@\s*champion", row)]
    assert len(champion_rows) == 1, text
    assert re.search(rf"genas\.trial\s*:\s*{best.number}\b", rows[champion_rows[0]]), rows
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED) for t in trials)
