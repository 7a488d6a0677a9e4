"""Servers genas starts (``mlflow models serve``, ``mlflow ui``, ``mlflow server``) and stops again.

A server is a tree: MLflow execs uvicorn or gunicorn, which fork workers. The child starts in a
session of its own, so a signal to genas does not reach the tree by accident and genas stops
all of it on purpose: SIGTERM, SIGINT or SIGHUP is forwarded to the child's whole process group, the
group gets ``STOP_GRACE_S`` to exit, then SIGKILL. Nothing keeps the port afterwards.

MLflow finds uvicorn, gunicorn and ``mlflow`` on PATH, so the folder of the running interpreter
(the virtual environment's ``bin/``) goes first on the child's PATH: ``/venv/bin/genas serve``
works from systemd, cron or a supervisor with the environment not activated.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, NoReturn

STOP_GRACE_S = 10.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with this interpreter's folder first on PATH."""
    env = dict(os.environ if env is None else env)
    here = str(Path(sys.executable).parent)  # not resolved: a venv's bin/python is a symlink
    rest = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and p != here]
    env["PATH"] = os.pathsep.join([here, *rest])
    return env


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal is still a member
        return True
    return True


def stop_group(proc: subprocess.Popen, signum: int, hurry: list[int] | None = None) -> None:
    """Send ``signum`` to ``proc``'s process group, wait up to ``STOP_GRACE_S`` for it to empty, then SIGKILL it.

    ``hurry`` is the list of signals received meanwhile: a second one skips the rest of the wait.
    """
    pgid = proc.pid  # the child leads its own session, so its pid is the group's id
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and not (hurry and len(hurry) > 1):
        proc.poll()  # reap the leader, so a zombie does not keep the group "alive"
        if proc.returncode is not None and not _group_alive(pgid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _die_by(signum: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum)  # not reached unless the signal is blocked


def run_child(cmd: list[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``cmd`` until it exits (its exit code) or genas is told to stop.

    On SIGTERM, SIGINT or SIGHUP the child's whole process group is stopped (see the module
    docstring), then genas ends by that same signal, as the supervisor that sent it expects.
    """
    received: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: received.append(signum)) for s in STOP_SIGNALS}
    try:
        proc = subprocess.Popen(cmd, env=child_env(env), start_new_session=True)
        while proc.poll() is None and not received:
            time.sleep(0.1)  # a signal cuts the sleep short; the handler only takes note
        if received:
            stop_group(proc, received[0], hurry=received)
            _die_by(received[0])
        if _group_alive(proc.pid):  # the child ended on its own: what it left must not keep the port
            stop_group(proc, signal.SIGTERM)
        return proc.returncode
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
