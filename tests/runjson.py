"""Run a bench program to completion (bounded), and read the JSON it wrote."""
from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

__all__ = ["run_json"]


def run_json(cmd: list[str], out: Path, cwd: Path, timeout: float, what: str) -> tuple[str, dict]:
    """Run ``cmd`` (which writes ``out``); return its stdout and the JSON. A run past ``timeout``
    gets SIGTERM, then SIGKILL, and fails the test; so does a non-zero exit."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise AssertionError(f"{what} did not finish within {timeout}s") from None
    assert proc.returncode == 0, f"exit {proc.returncode}\n{stdout}\n{stderr}"
    return stdout, json.loads(out.read_text())
