"""Start a server subprocess on a free loopback port, wait until it answers; stop it as a supervisor would."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator


LOCATION_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "GENAS_STORAGE", "GENAS_HOME")
# How systemd, cron or a supervisor start genas: the venv's script by its full path, the venv not on PATH.
GENAS = Path(sys.executable).parent / "genas"
BARE_PATH = "/usr/bin:/bin"


def genas_script(*args: str) -> list[str]:
    assert GENAS.exists(), f"{GENAS}: the tests expect genas installed in the virtual environment running them"
    return [str(GENAS), *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def output(proc: subprocess.Popen) -> str:
    """What the server has printed so far (stdout and stderr)."""
    return Path(proc.log_path).read_text(errors="replace")


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    # a ceiling, not a wait: on a busy 2-core machine importing MLflow alone has taken 25 s
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


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on, or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses


def descendants(root: int) -> dict[int, str]:
    """Every living descendant of ``root``: pid -> start time (so a reused pid is not taken for it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = {}, [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            if (fields := _stat(pid)) and fields[0] != "Z":
                found[pid] = fields[19]
                todo.append(pid)
    return found


def survivors(procs: dict[int, str]) -> list[int]:
    """Those of ``procs`` still running (a zombie has let go of its port and memory)."""
    return [pid for pid, start in procs.items() if (f := _stat(pid)) and f[19] == start and f[0] != "Z"]


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on ``port`` (as servers do, past connections in TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
    return True


def sigterm_and_check_all_gone(proc: subprocess.Popen, port: int) -> None:
    """SIGTERM genas alone (as ``kill PID`` or systemd's stop does); no process of its tree may survive."""
    tree = descendants(proc.pid)
    assert tree, "the server should run in child processes"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGTERM, output(proc)[-2000:]  # ends by the signal it was sent
    deadline = time.time() + 5  # the grace period is genas's; this covers only the kernel's bookkeeping
    while survivors(tree) and time.time() < deadline:
        time.sleep(0.1)
    assert not survivors(tree), f"left running after genas stopped: {survivors(tree)}\n{output(proc)[-2000:]}"
    assert port_is_free(port)
