"""Several workers on one machine: one ``genas worker`` process per device (``--gpus 0,1,2,3``)."""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

log = logging.getLogger(__name__)


def worker_command(study_name: str, device: str, storage: str | None, trials: int | None,
                   timeout: float | None, total_trials: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "genas.cli", "worker", study_name, "--device", device]
    for flag, value in (("--storage", storage), ("--trials", trials), ("--timeout", timeout),
                        ("--total-trials", total_trials)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd


def run_pool(commands: list[list[str]]) -> int:
    """Start every command, forward SIGINT/SIGTERM to all of them, wait; the worst exit code."""
    procs = [subprocess.Popen(cmd) for cmd in commands]

    def forward(signum: int, frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(0.5)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    codes = [p.returncode for p in procs]
    for cmd, code in zip(commands, codes):
        if code:
            log.warning("worker %s exited with %d", " ".join(cmd[3:]), code)
    return max(codes, key=abs) if codes else 0
