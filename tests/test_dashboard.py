"""optuna-dashboard (the `dashboard` extra) opens a genas study storage and serves its trials."""
import json
import shutil
import sys
import urllib.request
from pathlib import Path

import optuna
from servers import free_port, running

STUDY = "dggan-mnist5k"


def test_optuna_dashboard_serves_a_genas_study(tiny_study):
    home, _ = tiny_study
    # next to the interpreter first: the venv need not be activated (on PATH) to run the tests
    exe = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or shutil.which("optuna-dashboard")
    assert exe, "optuna-dashboard is in the test extra: pip install -e '.[test]'"
    storage = f"sqlite:///{home / 'optuna.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running([exe, storage, "--host", "127.0.0.1", "--port", str(port)], f"{base}/api/studies"):
        summaries = json.loads(urllib.request.urlopen(f"{base}/api/studies", timeout=30).read())["study_summaries"]
        ours = [s for s in summaries if s["study_name"] == STUDY]
        assert len(ours) == 1
        detail = json.loads(urllib.request.urlopen(f"{base}/api/studies/{ours[0]['study_id']}", timeout=30).read())
    study = optuna.load_study(study_name=STUDY, storage=storage)
    assert len(detail["trials"]) == len(study.trials)
    assert {a["key"] for a in detail["user_attrs"]} >= {"space", "objectives", "sampler"}
