"""`genas ui` starts MLflow's UI on the genas home's backend and prints its address."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_genas_backend(genas_home):
    port = _free_port()
    env = {**os.environ, "GENAS_HOME": str(genas_home)}
    proc = subprocess.Popen([sys.executable, "-m", "genas.cli", "ui", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        first_line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first_line and "mlflow.db" in first_line
        deadline, status = time.time() + 90, None
        while time.time() < deadline and status != 200:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status
            except OSError:
                time.sleep(0.5)
        assert status == 200
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                                     data=b'{"max_results": 10}', headers={"Content-Type": "application/json"})
        body = urllib.request.urlopen(req, timeout=10).read().decode()
        assert "Default" in body or "experiments" in body
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert (genas_home / "mlflow.db").exists()
