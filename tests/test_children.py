"""How genas stops the servers it starts (genas/cli/children.py), on a tree that will not stop by itself."""
import signal
import subprocess
import sys
import time
from pathlib import Path

from servers import descendants, survivors

from genas.cli.children import child_env

# A child that ignores SIGTERM, with a grandchild that ignores it too (ignored signals survive exec).
STUBBORN = ["sh", "-c", "trap '' TERM; sleep 300 & sleep 300"]
RUNNER = ("import sys, genas.cli.children as c; c.STOP_GRACE_S = 1.0; "
          f"sys.exit(c.run_child({STUBBORN!r}))")


def test_a_tree_that_ignores_sigterm_is_killed_after_the_grace_period():
    runner = subprocess.Popen([sys.executable, "-c", RUNNER])
    try:
        deadline = time.time() + 60
        while len(tree := descendants(runner.pid)) < 3 and time.time() < deadline:  # sh and two sleeps
            time.sleep(0.1)
        assert len(tree) == 3, tree
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)
        assert runner.returncode == -signal.SIGTERM
        assert not survivors(tree)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_children_find_programs_next_to_the_running_interpreter():
    path = child_env({"PATH": "/usr/bin:/bin"})["PATH"].split(":")
    assert path == [str(Path(sys.executable).parent), "/usr/bin", "/bin"]
