"""SSH targets: the release layout (§3.3.2) on remote hosts, driven over asyncssh.

``SshHost`` gives the deployer the same ``Host`` operations as ``LocalHost``, on one
remote machine. The deployer is synchronous, so every call goes to one event loop in a
private daemon thread (started on first use, shared by the whole process); each host
keeps one connection, opened on first use and closed by ``close()``, when the host object
is garbage-collected, or when the process exits.

Host keys are always checked against the target's ``known_hosts`` file: an unknown or
changed key is refused. Only public-key authentication is tried, with the target's key
file (no passwords, no agent, no ``~/.ssh/config``).

Every remote step is a fixed script run by ``sh -c`` with the values (paths, release ids,
commands, environment) as shell-quoted positional parameters, so no value is ever pasted
into shell text. The remote needs a POSIX shell, bash, GNU coreutils, findutils and tar.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import getpass
import os
import posixpath
import queue
import re
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from obeya.deploy import ssh_scripts as scripts
from obeya.deploy.targets import (
    MAX_RELEASE_BYTES,
    MAX_RELEASE_MEMBERS,
    RELEASE_LINK_PREFIX,
    Host,
    LogLine,
    TargetError,
)
from obeya.runner.workspace import WorkspaceError, inspect_tar

T = TypeVar("T")
CONNECT_TIMEOUT_S = 15.0
STEP_TIMEOUT_S = 120.0  # any one step but an upload or a command
UPLOAD_TIMEOUT_S = 3600.0
KEEPALIVE_S = 15.0
RUN_GRACE_S = 30.0  # beyond a command's own timeout, for the remote to kill it and answer
# The deployer's own PATH, HOME … mean nothing on the remote: its login gives its own.
LOCAL_ONLY = frozenset({"PATH", "HOME", "LANG", "USER", "LOGNAME", "SHELL", "PWD"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class SshSettings:
    """An SSH target's settings, checked."""

    hosts: tuple[tuple[str, int, str], ...]  # (address, port, name as configured)
    user: str
    root: str
    key_file: str
    known_hosts: str


def parse_target(target: Mapping[str, Any]) -> SshSettings:
    """Check an SSH target's settings; a TargetError names what is wrong and the fix."""
    root = target.get("root")
    if not isinstance(root, str) or not root.startswith("/") or posixpath.normpath(root) == "/":
        raise TargetError("ssh target root: an absolute directory path (not /)")
    hosts = target.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise TargetError("ssh target hosts: a list of host or host:port")
    files = {}
    for key in ("key_file", "known_hosts"):
        value = target.get(key)
        if not isinstance(value, str) or not value:
            raise TargetError(f"ssh target {key}: the path of a file on the Obeya server")
        if not Path(value).is_file():
            raise TargetError(f"ssh target {key} {value} does not exist on the Obeya server")
        files[key] = value
    user = target.get("user") or getpass.getuser()
    return SshSettings(
        hosts=tuple(_address(str(host)) for host in hosts),
        user=str(user),
        root=posixpath.normpath(root),
        key_file=files["key_file"],
        known_hosts=files["known_hosts"],
    )


def _address(host: str) -> tuple[str, int, str]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (address, port, name)."""
    address, port = host.strip(), "22"
    if address.startswith("["):
        address, _, rest = address[1:].partition("]")
        if rest:
            port = rest.removeprefix(":")
    elif address.count(":") == 1:
        address, port = address.split(":")
    if not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise TargetError(f"ssh target host {host!r}: use host or host:port")
    return address, int(port), host.strip()


def hosts_for(target: Mapping[str, Any]) -> list[Host]:
    """One ``SshHost`` per configured host, in the configured order."""
    settings = parse_target(target)
    return [SshHost(settings, *host) for host in settings.hosts]


# ---- the event loop the synchronous callers share ----------------------------------------


class _Loop:
    """An asyncio loop in a daemon thread; callers from any thread wait on its futures."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="obeya-ssh", daemon=True)
        self.thread.start()

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(work, self.loop)


_shared: _Loop | None = None
_shared_lock = threading.Lock()


def _event_loop() -> _Loop:
    global _shared
    with _shared_lock:
        if _shared is None or _shared.pid != os.getpid():  # a forked child starts its own
            _shared = _Loop()
        return _shared


class _Connection:
    """One host's SSH connection, opened on first use, reopened after it dropped."""

    def __init__(self, settings: SshSettings, address: str, port: int) -> None:
        self.settings, self.address, self.port = settings, address, port
        self.conn: asyncssh.SSHClientConnection | None = None
        self.lock = asyncio.Lock()

    async def get(self) -> asyncssh.SSHClientConnection:
        async with self.lock:
            if self.conn is None or self.conn.is_closed():
                self.conn = await asyncssh.connect(
                    self.address,
                    self.port,
                    username=self.settings.user,
                    known_hosts=self.settings.known_hosts,
                    client_keys=[self.settings.key_file],
                    agent_path=None,
                    password=None,
                    preferred_auth="publickey",
                    gss_host=None,
                    config=[],
                    connect_timeout=CONNECT_TIMEOUT_S,
                    keepalive_interval=KEEPALIVE_S,
                )
            return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _close_on_loop(loop: _Loop, connection: _Connection) -> None:
    if loop.pid == os.getpid() and not loop.loop.is_closed():
        loop.loop.call_soon_threadsafe(connection.close)


# ---- the host ----------------------------------------------------------------------------


class SshHost:
    """The release layout under ``root`` on one remote host."""

    def __init__(self, settings: SshSettings, address: str, port: int, name: str) -> None:
        self.settings = settings
        self.name = name
        self._loop = _event_loop()
        self._connection = _Connection(settings, address, port)
        self._finalizer = weakref.finalize(self, _close_on_loop, self._loop, self._connection)

    @property
    def root(self) -> str:
        return self.settings.root

    def release_dir(self, release_id: str) -> str:
        return f"{self.root}/releases/{release_id}"

    def close(self) -> None:
        """Close the connection now (it is reopened if the host is used again)."""
        self._finalizer()
        self._finalizer = weakref.finalize(self, _close_on_loop, self._loop, self._connection)

    # -- the Host operations

    def prepare(self) -> None:
        self._script("prepare the release layout", scripts.PREPARE, self.root)

    def current(self) -> str | None:
        link = self._script("read current", scripts.CURRENT, self.root).decode().strip()
        name = link.removeprefix(RELEASE_LINK_PREFIX).rstrip("/")
        return name if "/" not in name and name else None

    def releases(self) -> list[str]:
        found = self._script("list releases", scripts.RELEASES, self.root)
        return sorted(name for name in found.decode().split("\0") if name)

    def has_release(self, release_id: str) -> bool:
        code, _ = self._status(
            "look for a release", scripts.HAS_RELEASE, self.root, _id(release_id)
        )
        return code == 0

    def discard_incoming(self) -> None:
        self._script("discard half-unpacked releases", scripts.DISCARD_INCOMING, self.root)

    def unpack(self, release_id: str, archive: Path) -> dict[str, str]:
        """Check the archive here, upload it, unpack it beside the releases, move it in."""
        release_id = _id(release_id)
        try:
            inspect_tar(archive, max_bytes=MAX_RELEASE_BYTES, max_members=MAX_RELEASE_MEMBERS)
        except WorkspaceError as error:
            raise TargetError(f"artifact refused before upload to {self.name}: {error}") from None
        manifest = scripts.archive_manifest(archive)
        code, _ = self._status("make room for the release", scripts.INCOMING, self.root, release_id)
        if code == scripts.EXISTS:
            raise TargetError(f"release {release_id} already exists on {self.name}")
        if code != 0:
            raise TargetError(f"{self.name}: cannot make releases/.incoming-{release_id}")
        upload = f"{self.root}/releases/.incoming-{release_id}.tar"
        self._call("upload the release", self._upload(archive, upload), UPLOAD_TIMEOUT_S)
        self._script("unpack the release", scripts.EXTRACT, self.root, release_id)
        return manifest

    def switch(self, release_id: str) -> None:
        """Point ``current`` at the release: a new link, then rename(2) over the old one."""
        temporary = f".current-{uuid.uuid4().hex}"
        code, output = self._status(
            "switch current", scripts.SWITCH, self.root, _id(release_id), temporary
        )
        if code == scripts.MISSING:
            raise TargetError(f"release {release_id} is not on {self.name}")
        if code != 0:
            raise TargetError(f"{self.name}: switch to {release_id} failed: {_text(output)}")

    def archive(self, release_id: str) -> None:
        self._script("archive a release", scripts.ARCHIVE, self.root, _id(release_id))

    def manifest(self, release_id: str | None = None) -> dict[str, str]:
        top = f"{self.root}/current" if release_id is None else self.release_dir(_id(release_id))
        return scripts.parse_manifest(self._script("checksum the files", scripts.MANIFEST, top))

    def run(
        self, command: str, env: Mapping[str, str], cwd: str, timeout_s: float, log: LogLine
    ) -> int:
        """Run ``command`` with bash in ``cwd`` on the host; values reach it as environment.

        Output lines go to ``log`` as they come (from this thread: ``log`` may write to the
        database). On the host the command runs under timeout(1), which kills its whole
        process group when ``timeout_s`` passes; its output goes through a file there, so a
        daemon it leaves running cannot keep the step waiting.
        """
        assignments = []
        for key, value in env.items():
            if key in LOCAL_ONLY:
                continue
            if not _ENV_NAME.fullmatch(key):
                raise TargetError(f"environment variable name {key!r} is not allowed")
            assignments.append(f"{key}={value}")
        lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        started = time.monotonic()
        limit = f"{max(timeout_s, 0.001):.3f}"
        argv = [cwd, limit, command, *assignments]
        future = self._loop.submit(self._stream(scripts.RUN, argv, timeout_s, lines.put))
        future.add_done_callback(lambda _: lines.put(None))
        while (line := lines.get()) is not None:
            log(line)
        code = self._result("run a command", future)
        if code in (124, 137) and time.monotonic() - started >= timeout_s:
            log(f"timed out after {timeout_s:g} s: killed with its process group")
            return 124
        return code

    # -- talking to the host

    def _call(self, doing: str, work: Awaitable[T], timeout_s: float) -> T:
        return self._result(doing, self._loop.submit(_within(work, timeout_s)))

    def _result(self, doing: str, future: concurrent.futures.Future[T]) -> T:
        settings = self.settings
        try:
            return future.result()
        except asyncssh.HostKeyNotVerifiable:
            raise TargetError(
                f"the host key of {self.name} is not in {settings.known_hosts} (or differs "
                f"from it): Obeya refuses unknown host keys. Check the host's key fingerprint "
                f"on the host itself, then add its line to {settings.known_hosts}"
            ) from None
        except asyncssh.PermissionDenied:
            raise TargetError(
                f"{self.name} refused the key {settings.key_file} for user {settings.user}: "
                f"add its public key to that user's authorized_keys on the host"
            ) from None
        except TimeoutError:
            raise TargetError(f"{self.name}: no answer while trying to {doing}") from None
        except (asyncssh.Error, OSError, ValueError) as error:  # ValueError: an unreadable key
            reason = getattr(error, "reason", "") or getattr(error, "strerror", "") or str(error)
            raise TargetError(f"{self.name}: cannot {doing}: {reason}") from None

    def _status(self, doing: str, script: str, *args: str) -> tuple[int, bytes]:
        """Run one of the fixed scripts: (exit code, output with stderr)."""
        return self._call(doing, self._exec(script, args), STEP_TIMEOUT_S)

    def _script(self, doing: str, script: str, *args: str) -> bytes:
        """Run one of the fixed scripts; its stdout, or a TargetError when it fails."""
        code, output = self._status(doing, script, *args)
        if code != 0:
            raise TargetError(f"{self.name}: cannot {doing}: {_text(output)}")
        return output

    async def _exec(self, script: str, args: tuple[str, ...]) -> tuple[int, bytes]:
        conn = await self._connection.get()
        result = await conn.run(scripts.command_line(script, args), encoding=None, check=False)
        stdout = result.stdout if isinstance(result.stdout, bytes) else b""
        stderr = result.stderr if isinstance(result.stderr, bytes) else b""
        code = result.exit_status if result.exit_status is not None else 255
        return code, stdout if code == 0 else (stderr or stdout)

    async def _upload(self, archive: Path, remote: str) -> None:
        conn = await self._connection.get()
        async with conn.start_sftp_client() as sftp:
            await sftp.put(str(archive), remote)

    async def _stream(
        self, script: str, argv: list[str], timeout_s: float, put: Callable[[str], None]
    ) -> int:
        conn = await self._connection.get()
        process = await conn.create_process(
            scripts.command_line(script, argv),
            stdin=asyncssh.DEVNULL,
            stderr=asyncssh.STDOUT,
            encoding="utf-8",
            errors="replace",
        )
        try:

            async def pump() -> None:
                while line := await process.stdout.readline():
                    put(line.rstrip("\n").rstrip("\r"))

            await _within(pump(), timeout_s + RUN_GRACE_S)
            completed = await _within(process.wait(), RUN_GRACE_S)
        finally:
            process.close()
        if completed.exit_status is None or completed.exit_status < 0:
            put(f"ended without an exit code (signal {completed.exit_signal or 'unknown'})")
            return 255
        return completed.exit_status


async def _within(work: Awaitable[T], timeout_s: float) -> T:
    return await asyncio.wait_for(work, timeout_s)


def _id(release_id: str) -> str:
    """A release id is one plain path component; anything else never reaches a path."""
    if not release_id or "/" in release_id or release_id.startswith(".") or "\0" in release_id:
        raise TargetError(f"{release_id!r} is not a release id")
    return release_id


def _text(output: bytes) -> str:
    text = output.decode(errors="replace").strip()
    return text[-2000:] or "no message"
