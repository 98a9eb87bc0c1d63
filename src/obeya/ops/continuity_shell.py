"""Running a backup or restore command: bash in its own process group, cut at a timeout.

Output goes to a temporary file rather than a pipe, so a command that prints a whole dump
cannot fill memory, and a child left in the background cannot hold the run open; only
the tail is kept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from obeya.ops.continuity_logic import OUTPUT_TAIL, tail

CANNOT_START = 126  # the shell's own code for a command it could not run
PASSED_ON = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")


@dataclass(frozen=True)
class CommandResult:
    """How a command ended: ``exit_code`` is None when it was killed at the timeout."""

    exit_code: int | None
    duration_s: float
    output: str  # the tail

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def last_line(self) -> str:
        lines = self.output.strip().splitlines()
        return lines[-1][:200] if lines else ""


def environment(**extra: str) -> dict[str, str]:
    """A small environment: the basics of this process's, plus Obeya's own variables.

    Obeya's settings (the database URL, the secret key) are never passed on.
    """
    env = {key: os.environ[key] for key in PASSED_ON if key in os.environ}
    env.update(extra)
    return env


def run(
    command: str, timeout_s: float, env: dict[str, str], cwd: Path | None = None
) -> CommandResult:
    """Run ``command`` with bash in a new process group; kill the group at the timeout."""
    started = time.monotonic()
    try:
        return _run(command, timeout_s, env, cwd, started)
    except OSError as error:  # no bash, no room for the output file: a failure, not a crash
        return CommandResult(CANNOT_START, time.monotonic() - started, f"could not start: {error}")


def _run(
    command: str, timeout_s: float, env: dict[str, str], cwd: Path | None, started: float
) -> CommandResult:
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            ["bash", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            exit_code: int | None = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            exit_code = None
        duration = time.monotonic() - started
        size = output.seek(0, os.SEEK_END)
        output.seek(max(0, size - OUTPUT_TAIL - 200))
        text = tail(output.read().decode(errors="replace"))
    if exit_code is None:
        text += f"\n[killed: no end within {timeout_s:g} s]"
    return CommandResult(exit_code, duration, text)
