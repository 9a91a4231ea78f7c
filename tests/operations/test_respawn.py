"""bin/respawn keeps a process of the development stack running: started again when it exits on its own,
stopped for good when the stack is stopped."""

import os
import signal
import subprocess
import time
from pathlib import Path

RESPAWN = Path(__file__).resolve().parents[2] / "bin" / "respawn"


def _env() -> dict:
    return {**os.environ, "RESPAWN_DELAY_S": "0.1"}


def test_a_process_that_fails_is_started_again_until_it_succeeds(tmp_path):
    runs = tmp_path / "runs"
    # Fails twice, then exits cleanly: respawn must run it three times and pass on the clean exit.
    script = f'echo run >> {runs}; [ "$(wc -l < {runs})" -ge 3 ]'
    result = subprocess.run([RESPAWN, "sh", "-c", script], env=_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert runs.read_text().count("run") == 3
    assert result.stderr.count("starting it again") == 2


def test_a_stop_asked_for_ends_the_process_and_the_loop(tmp_path):
    runs = tmp_path / "runs"
    process = subprocess.Popen(
        [RESPAWN, "sh", "-c", f"echo run >> {runs}; exec sleep 60"],
        env=_env(),
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while not (runs.exists() and runs.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    # As honcho stops the stack: SIGTERM to the whole process group.
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=10)
    time.sleep(0.3)
    assert runs.read_text().count("run") == 1
    assert "starting it again" not in process.stderr.read()
