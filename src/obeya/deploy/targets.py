"""Where releases live (§3.3.2): ``<root>/releases/<id>/``, ``<root>/shared/``,
``<root>/current`` (a symlink switched atomically) and ``<root>/archive/``.

A target is one or more hosts with that layout. ``LocalHost`` is a directory on this
machine; ``obeya.deploy.ssh`` gives the same operations on remote hosts. The deployer only
speaks the ``Host`` protocol, so a rolling deploy over SSH is the same steps host by host.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Protocol

from obeya.runner import sandbox
from obeya.runner.keeper import Keepers
from obeya.runner.workspace import WorkspaceError, safe_extract_tar

LogLine = Callable[[str], None]
MAX_RELEASE_BYTES = 4 * 1024**3
MAX_RELEASE_MEMBERS = 200_000
MANIFEST_LIMIT = 50_000  # files checked for drift; a bigger release is summarised
RELEASE_LINK_PREFIX = "releases/"
RUNNING_RECORD = ".running"  # the process group of the hook or check running on a root


class TargetError(Exception):
    """A step on a target failed; the message says what and where."""


class Host(Protocol):
    """One machine's release layout, as the deployer drives it."""

    name: str

    def prepare(self) -> None: ...

    def current(self) -> str | None: ...

    def releases(self) -> list[str]: ...

    def unpack(self, release_id: str, archive: Path) -> dict[str, str]: ...

    def has_release(self, release_id: str) -> bool: ...

    def switch(self, release_id: str) -> None: ...

    def archive(self, release_id: str) -> None: ...

    def discard_incoming(self) -> None: ...

    def run(
        self, command: str, env: Mapping[str, str], cwd: str, timeout_s: float, log: LogLine
    ) -> int: ...

    def manifest(self, release_id: str | None = None) -> dict[str, str]: ...

    def release_dir(self, release_id: str) -> str: ...

    @property
    def root(self) -> str: ...


def hash_tree(top: Path, limit: int = MANIFEST_LIMIT) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under ``top``; links as "->target"."""
    found: dict[str, str] = {}
    for directory, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if (Path(directory) / d).is_symlink()]:
            path = Path(directory) / name
            relative = path.relative_to(top).as_posix()
            if path.is_symlink():
                found[relative] = "->" + os.readlink(path)
            elif path.is_file():
                digest = hashlib.sha256()
                with path.open("rb") as handle:
                    while block := handle.read(1 << 20):
                        digest.update(block)
                found[relative] = digest.hexdigest()
            if len(found) >= limit:
                return found
    return found


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalHost:
    """The release layout in a directory of this machine; hooks and command checks run in
    the root's sandbox (its keeper, `obeya.runner.keeper`), where the root is writable."""

    def __init__(self, root: str, keepers: Keepers | None = None) -> None:
        self._root = Path(root)
        self.name = "local"
        self._keepers = keepers

    @property
    def root(self) -> str:
        return str(self._root)

    @property
    def _releases(self) -> Path:
        return self._root / "releases"

    def release_dir(self, release_id: str) -> str:
        return str(self._releases / release_id)

    def prepare(self) -> None:
        try:
            for sub in ("releases", "shared", "archive"):
                (self._root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TargetError(f"cannot prepare {self._root}: {error.strerror}") from None

    def current(self) -> str | None:
        try:
            link = os.readlink(self._root / "current")
        except (FileNotFoundError, OSError):
            return None
        name = link.removeprefix(RELEASE_LINK_PREFIX).rstrip("/")
        return name if "/" not in name and name else None

    def releases(self) -> list[str]:
        if not self._releases.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self._releases.iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        )

    def has_release(self, release_id: str) -> bool:
        return (self._releases / release_id).is_dir()

    def discard_incoming(self) -> None:
        """Clear what a deployer that died left behind: the hook or check it was running
        (so it cannot go on beside the next deployer's), half-unpacked releases (never a
        finished one) and temporary links."""
        stop_leftover_commands(self._root / RUNNING_RECORD, self.root)
        if self._releases.is_dir():
            for entry in self._releases.iterdir():
                if entry.name.startswith(".incoming-"):
                    shutil.rmtree(entry, ignore_errors=True)
        for entry in self._root.glob(".current-*"):
            entry.unlink(missing_ok=True)

    def unpack(self, release_id: str, archive: Path) -> dict[str, str]:
        """Unpack ``archive`` safely as a release; it appears whole or not at all."""
        final = self._releases / release_id
        if final.exists():
            raise TargetError(f"release {release_id} already exists on {self.name}")
        incoming = self._releases / f".incoming-{release_id}"
        shutil.rmtree(incoming, ignore_errors=True)
        try:
            safe_extract_tar(
                archive, incoming, max_bytes=MAX_RELEASE_BYTES, max_members=MAX_RELEASE_MEMBERS
            )
        except WorkspaceError as error:
            shutil.rmtree(incoming, ignore_errors=True)
            raise TargetError(f"artifact refused: {error}") from None
        manifest = hash_tree(incoming)
        os.rename(incoming, final)
        _fsync_directory(self._releases)
        return manifest

    def switch(self, release_id: str) -> None:
        """Point ``current`` at the release: a new link, then rename(2) over the old one."""
        if not self.has_release(release_id):
            raise TargetError(f"release {release_id} is not on {self.name}")
        temporary = self._root / f".current-{uuid.uuid4().hex}"
        os.symlink(f"{RELEASE_LINK_PREFIX}{release_id}", temporary)
        try:
            os.replace(temporary, self._root / "current")
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_directory(self._root)

    def archive(self, release_id: str) -> None:
        """Move a release aside into ``archive/`` (never deleted in place)."""
        source = self._releases / release_id
        if not source.exists():
            return
        destination = self._root / "archive" / release_id
        suffix = 1
        while destination.exists():
            suffix += 1
            destination = self._root / "archive" / f"{release_id}.{suffix}"
        os.rename(source, destination)

    def manifest(self, release_id: str | None = None) -> dict[str, str]:
        top = self._root / "current" if release_id is None else self._releases / release_id
        return hash_tree(top.resolve()) if top.exists() else {}

    def run(
        self, command: str, env: Mapping[str, str], cwd: str, timeout_s: float, log: LogLine
    ) -> int:
        record = self._root / RUNNING_RECORD
        if self._keepers is None:
            raise TargetError(f"{self._root}: no sandbox to run hooks in")
        try:
            argv = self._keepers.command(self._root, ["bash", "-c", command], Path(cwd))
        except sandbox.SandboxUnavailable as missing:
            log(missing.message)
            return 127
        env = self._keepers.sandbox.environment(env)
        return run_command(command, env, cwd, timeout_s, log, record=record, argv=argv)


def stop_leftover_commands(record: Path, root: str) -> None:
    """Kill the process group ``record`` names, if a command of ``root`` still runs in it.

    A deployer killed mid-hook leaves the hook running in its own session; the deployer
    that takes the environment over must not run its own hooks beside it. Only processes
    of that group whose environment names this root are killed: a process id may have
    been reused, and services the hook started detached (setsid) are in other groups.
    """
    try:
        group = int(record.read_text().strip())
    except (OSError, ValueError):
        return
    ours = f"OBEYA_ROOT={root}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != group:  # state, parent, process group
                continue
            if ours not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to look at
    record.unlink(missing_ok=True)


def run_command(
    command: str,
    env: Mapping[str, str],
    cwd: str,
    timeout_s: float,
    log: LogLine,
    *,
    record: Path | None = None,
    argv: list[str] | None = None,
) -> int:
    """Run ``command`` with bash in its own process group; its output goes to ``log``.

    ``argv`` is the command line that runs it, when not plain ``bash -c command``: in a
    sandbox (`LocalHost.run`).

    Values reach the command through its environment, never pasted into its text. Output
    is read from a file rather than a pipe, so a daemon the command leaves running (a
    restart hook starting the service) cannot keep the step waiting. On timeout the whole
    group is killed and the exit code is 124, like timeout(1). While it runs, ``record``
    (if given) holds its process group, for ``stop_leftover_commands`` after a crash.
    """
    with tempfile.TemporaryFile() as output:
        try:
            process = subprocess.Popen(
                argv or ["bash", "-c", command],
                cwd=cwd if argv is None else "/",
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            log(f"cannot start: {error.strerror}")
            return 127
        if record is not None:
            with contextlib.suppress(OSError):  # whole or absent, never half written
                partial = record.with_name(record.name + ".partial")
                partial.write_text(str(process.pid))
                partial.replace(record)
        try:
            return _follow(process, output, timeout_s, log)
        finally:
            if record is not None:
                record.unlink(missing_ok=True)


def _follow(
    process: subprocess.Popen[bytes], output: IO[bytes], timeout_s: float, log: LogLine
) -> int:
    """Wait for ``process``, passing its output on line by line; kill its group on timeout."""
    deadline = time.monotonic() + timeout_s
    position = 0
    pending = b""
    while True:
        try:
            code = process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            code = None
        position, pending = _drain(output, position, pending, log)
        if code is not None:
            break
        if time.monotonic() >= deadline:
            _kill_group(process)
            log(f"timed out after {timeout_s:g} s: killed with its process group")
            code = 124
            break
    position, pending = _drain(output, position, pending, log)
    if pending:
        log(pending.decode(errors="replace"))
    return code


def _drain(output: object, position: int, pending: bytes, log: LogLine) -> tuple[int, bytes]:
    handle = output  # a binary temporary file
    handle.seek(position)  # type: ignore[attr-defined]
    data = handle.read()  # type: ignore[attr-defined]
    if not data:
        return position, pending
    position += len(data)
    *lines, pending = (pending + data).split(b"\n")
    for line in lines:
        log(line.decode(errors="replace").rstrip("\r"))
    return position, pending


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
