"""Kill a writer process in the middle of its work, for the crash-safety tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def kill_when_flagged(script: str, args: list[str], flag: Path, what: str) -> None:
    """Run ``python -c script *args``, wait (up to 30 s) until it creates ``flag``, then
    SIGKILL it; fail naming ``what`` if the flag never appears."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", script, *args], env=env)
    try:
        for _ in range(600):
            if flag.exists():
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the writer never reached the middle of its {what}")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
