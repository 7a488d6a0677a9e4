"""`genas ui` starts MLflow's UI on the genas home's backend and prints its address."""
import sys
import urllib.request

from servers import free_port, output, running


def test_ui_serves_the_genas_backend(genas_home):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-m", "genas.cli", "ui", "--port", str(port)], f"{base}/health",
                 env={"GENAS_HOME": str(genas_home)}) as proc:
        req = urllib.request.Request(f"{base}/api/2.0/mlflow/experiments/search",
                                     data=b'{"max_results": 10}', headers={"Content-Type": "application/json"})
        body = urllib.request.urlopen(req, timeout=10).read().decode()
        first_line = output(proc).splitlines()[0]
    assert f"MLflow UI for sqlite:///{genas_home / 'mlflow.db'} at {base}" in first_line
    assert '"experiments"' in body and "Default" in body
    assert (genas_home / "mlflow.db").exists()
