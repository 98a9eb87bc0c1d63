"""Running a backup or restore command: bash in the sandbox, cut at a timeout.

The command sees the system read-only and only the folders it is handed: the service's
backup folder (`backup_dir`) for a backup, the drill's scratch folder for a restore.

Output goes to a temporary file rather than a pipe, so a command that prints a whole dump
cannot fill memory, and a child left in the background cannot hold the run open; only
the tail is kept.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from obeya.ops.continuity_logic import OUTPUT_TAIL, tail
from obeya.runner import sandbox

CANNOT_START = 126  # the shell's own code for a command it could not run
log = logging.getLogger("obeya.ops")
SERVER_COMMANDS_OFF = (
    "not run: this server runs no commands outside pipelines (OBEYA_SERVER_COMMANDS=off); "
    "an administrator can turn them on"
)
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


def backup_dir(slug: str) -> Path:
    """The folder a service's backup commands may write: ``<data dir>/backups/<slug>``,
    plus any folder named in ``OBEYA_SANDBOX_WRITABLE`` (a mounted backup volume)."""
    folder = Path(settings.DATA_DIR) / "backups" / slug
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def extra_writable() -> list[Path]:
    """The folders an administrator opened to backup and restore commands; one that holds
    the data directory is left out (with a warning), whatever the setting says."""
    data = Path(settings.DATA_DIR).resolve()
    folders = []
    for entry in settings.OBEYA_SANDBOX_WRITABLE:
        folder = Path(entry).resolve()
        if folder == data or folder in data.parents:
            log.warning("OBEYA_SANDBOX_WRITABLE: %s holds the data directory; not opened", entry)
        elif folder.is_dir():
            folders.append(folder)
    return folders


def run(
    command: str,
    timeout_s: float,
    env: dict[str, str],
    cwd: Path | None = None,
    *,
    writable: Iterable[Path] = (),
    readonly: Iterable[Path] = (),
) -> CommandResult:
    """Run ``command`` in the sandbox, ``cwd`` and ``writable`` its only writable folders;
    kill it at the timeout."""
    started = time.monotonic()
    if not settings.OBEYA_SERVER_COMMANDS:
        return CommandResult(CANNOT_START, 0.0, SERVER_COMMANDS_OFF)
    folders = [*([cwd] if cwd else []), *writable, *extra_writable()]
    try:
        return _run(command, timeout_s, env, cwd, folders, list(readonly), started)
    except sandbox.SandboxUnavailable as missing:
        return CommandResult(CANNOT_START, time.monotonic() - started, missing.message)
    except OSError as error:  # no bash, no room for the output file: a failure, not a crash
        return CommandResult(CANNOT_START, time.monotonic() - started, f"could not start: {error}")


def _run(
    command: str,
    timeout_s: float,
    env: dict[str, str],
    cwd: Path | None,
    writable: list[Path],
    readonly: list[Path],
    started: float,
) -> CommandResult:
    with tempfile.TemporaryFile() as output:
        process = sandbox.start_command(
            sandbox.configured(),
            command,
            env=env,
            output=output,
            writable=writable,
            readonly=[path for path in readonly if path.exists() and path not in writable],
            cwd=cwd,
        )
        try:
            exit_code: int | None = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            sandbox.kill_group(process)
            exit_code = None
        duration = time.monotonic() - started
        size = output.seek(0, os.SEEK_END)
        output.seek(max(0, size - OUTPUT_TAIL - 200))
        text = tail(output.read().decode(errors="replace"))
    if exit_code is None:
        text += f"\n[killed: no end within {timeout_s:g} s]"
    return CommandResult(exit_code, duration, text)
