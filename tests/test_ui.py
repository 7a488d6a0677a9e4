"""`genas ui` starts MLflow's UI on the genas home's backend and prints its address; started the way a
supervisor starts it (the venv's script, the venv not on PATH) and stopped with SIGTERM, it leaves nothing."""
import urllib.request

from servers import BARE_PATH, free_port, genas_script, output, running, sigterm_and_check_all_gone


def test_ui_serves_the_genas_backend_and_stops_with_its_whole_tree(genas_home):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(genas_script("ui", "--port", str(port)), f"{base}/health",
                 env={"GENAS_HOME": str(genas_home), "PATH": BARE_PATH}) as proc:
        req = urllib.request.Request(f"{base}/api/2.0/mlflow/experiments/search",
                                     data=b'{"max_results": 10}', headers={"Content-Type": "application/json"})
        body = urllib.request.urlopen(req, timeout=10).read().decode()
        first_line = output(proc).splitlines()[0]
        sigterm_and_check_all_gone(proc, port)
    assert f"MLflow UI for sqlite:///{genas_home / 'mlflow.db'} at {base}" in first_line
    assert '"experiments"' in body and "Default" in body
    assert (genas_home / "mlflow.db").exists()
