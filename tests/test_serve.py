"""`genas serve` behind MLflow's model server, called the way the README shows (curl, JSON)."""
import base64
import io
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from servers import BARE_PATH, free_port, genas_script, running, sigterm_and_check_all_gone

import genas

MODEL_URI = "models:/genas-dggan-mnist5k@champion"
README = Path(__file__).resolve().parents[1] / "README.md"
MAX_SAMPLES = 8


def post(port: int, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def decode(predictions: list[str]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(s)))) for s in predictions])


@pytest.fixture(scope="module")
def server(tiny_study):
    home, _ = tiny_study
    port = free_port()
    cmd = [sys.executable, "-m", "genas.cli", "serve", MODEL_URI, "--port", str(port),
           "--max-samples", str(MAX_SAMPLES)]
    with running(cmd, f"http://127.0.0.1:{port}/ping", env={"GENAS_HOME": str(home)}, cwd=str(home.parent)):
        yield port, home


def test_readme_curl_call_returns_the_champions_samples(server, in_tiny_study):
    port, _ = server
    curl = next(line.strip() for line in README.read_text().splitlines() if line.strip().startswith("curl "))
    assert "5001" in curl, "the README's curl line should use genas serve's default port"
    out = subprocess.run(["bash", "-c", curl.replace("5001", str(port))], capture_output=True, text=True,
                         timeout=120, check=True)
    predictions = json.loads(out.stdout)["predictions"]
    n = int(re.search(r'"n": (\d+)', curl).group(1))
    assert len(predictions) == n
    expected = genas.load(MODEL_URI).sample(n, seed=0).numpy()
    assert np.array_equal(decode(predictions), expected[:, 0]), "served images differ from genas.load's"


def test_same_seed_same_images_and_arrays_on_request(server):
    port, _ = server
    body = json.dumps({"inputs": {"n": 3, "seed": 7}}).encode()
    first, second = post(port, body), post(port, body)
    assert first[0] == second[0] == 200 and first[1] == second[1]
    status, arrays = post(port, json.dumps({"inputs": {"n": 3, "seed": 7, "format": "array"}}).encode())
    assert status == 200
    assert np.array_equal(np.asarray(arrays["predictions"], dtype=np.uint8)[:, 0], decode(first[1]["predictions"]))
    other = post(port, json.dumps({"inputs": {"n": 3, "seed": 8}}).encode())
    assert other[1] != first[1]


@pytest.mark.parametrize("body, words", [
    ({"inputs": {"n": 0}}, "'n' must be an integer in 1..8"),
    ({"inputs": {"n": MAX_SAMPLES + 1}}, "'n' must be an integer in 1..8"),
    ({"inputs": {"n": 2, "seed": 1.5}}, "'seed' must be an integer"),
    ({"inputs": {"n": 2, "seed": "abc"}}, "'seed' must be an integer"),
    ({"inputs": {"n": 2, "colour": "red"}}, "unknown input fields ['colour']"),
    ({"inputs": {"n": 2, "format": "jpeg"}}, "'format' must be 'png' or 'array'"),
    ("not json", "valid JSON"),
])
def test_malformed_requests_get_a_4xx_and_the_server_lives_on(server, body, words):
    port, _ = server
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    status, answer = post(port, raw)
    assert 400 <= status < 500, (status, answer)
    assert words in answer.get("message", ""), answer
    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=10).status == 200
    assert post(port, json.dumps({"inputs": {"n": 1, "seed": 0}}).encode())[0] == 200


def test_serve_rejects_an_unknown_model(tiny_study):
    home, _ = tiny_study
    out = subprocess.run([sys.executable, "-m", "genas.cli", "serve", "models:/genas-nope@champion"],
                         env={"GENAS_HOME": str(home), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "does not resolve" in out.stderr


def test_started_without_the_venv_on_path_sigterm_stops_the_whole_server(tiny_study):
    """MLflow execs uvicorn from PATH: a server started by the venv's full path must find it, and
    SIGTERM to genas must take mlflow and uvicorn down with it and free the port."""
    home, _ = tiny_study
    port = free_port()
    cmd = genas_script("serve", MODEL_URI, "--port", str(port))
    with running(cmd, f"http://127.0.0.1:{port}/ping", env={"GENAS_HOME": str(home), "PATH": BARE_PATH},
                 cwd=str(home.parent)) as proc:
        assert post(port, json.dumps({"inputs": {"n": 1, "seed": 0}}).encode())[0] == 200
        sigterm_and_check_all_gone(proc, port)
