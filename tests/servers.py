"""Start a server subprocess on a free loopback port and wait until it answers."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator


LOCATION_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "GENAS_STORAGE", "GENAS_HOME")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def output(proc: subprocess.Popen) -> str:
    """What the server has printed so far (stdout and stderr)."""
    return Path(proc.log_path).read_text(errors="replace")


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{output(proc)[-3000:]}")
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def running(cmd: list[str], ready_url: str, env: dict[str, str] | None = None,
            cwd: str | None = None) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` (its own process group, killed at exit) until ``ready_url`` answers 200.

    Locations the test process picked up (``mlflow.set_tracking_uri`` exports its URI) are not
    inherited: the server sees only what ``env`` names.
    """
    inherited = {k: v for k, v in os.environ.items() if k not in LOCATION_VARS}
    # A file, not a pipe: a chatty server must never block on a full pipe nobody reads.
    log = tempfile.NamedTemporaryFile("w+", prefix="server-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, env={**inherited, **(env or {})}, cwd=cwd, stdout=log,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    proc.log_path = log.name
    try:
        wait_for(ready_url, proc)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
