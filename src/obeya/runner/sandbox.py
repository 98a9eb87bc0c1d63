"""The sandbox every command a user writes runs in: bubblewrap (``bwrap``).

Job scripts, release hooks, command monitors, backup and restore commands all start through
`Sandbox.launch`, whether in a remote runner or in ``obeya serve``. Inside, a command sees:

- the system (``/usr``, ``/etc`` and the ``/bin``/``/lib`` links) read-only, plus any
  folders named in ``OBEYA_SANDBOX_READONLY``;
- the folders its caller hands it as writable (its workspace), at the same paths as
  outside, and nothing else of the host: no data directory, no database file, no other
  job's workspace, no home directory;
- an empty ``/tmp`` of its own, its own ``/proc`` and PID namespace (it cannot see or signal
  any process outside), a fresh ``/dev``, and no capabilities;
- the network of the host, unless ``OBEYA_SANDBOX_NETWORK=none`` cuts it off;
- user id 65534 (``nobody``) and no capabilities. Run by an ordinary user, the sandbox has
  a user namespace of its own, where the kernel maps that id back to the caller's for the
  folders bound in. Run by root, there is no user namespace: the command becomes uid
  65534 for real (``setpriv``), so root-owned files such as ``/etc/shadow`` and SSH host
  keys stay closed to it, and its writable folders are handed to that uid first.

``OBEYA_SANDBOX=off`` runs commands directly instead; it is meant only for a runner host
that trusts every pipeline it runs, and is shown as such wherever the runner is listed.
This module imports only the standard library: remote runners use it as it is.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

SANDBOX_UID = 65534  # nobody, on Debian and most other systems
SANDBOX_TMP = "/tmp"  # noqa: S108 - inside the sandbox: an empty tmpfs of its own
_SETPRIV = "/usr/bin/setpriv"  # util-linux: drops root to SANDBOX_UID inside the sandbox
SYSTEM_PATHS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
INSTALL_HINT = (
    "bubblewrap (bwrap) is not installed, and Obeya runs no command a user wrote outside "
    "its sandbox: install it (Debian and Ubuntu: apt-get install bubblewrap; Fedora: dnf "
    "install bubblewrap), or, on a runner host that trusts every pipeline it runs, set "
    "OBEYA_SANDBOX=off"
)


class SandboxUnavailable(OSError):
    """A command cannot run: the sandbox is on, but bwrap is not there to give it.

    An OSError, like a missing program: whoever starts commands already treats those as
    "could not start", never as the command's own failure.
    """

    def __init__(self, message: str = INSTALL_HINT) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Launch:
    """What to hand `subprocess.Popen` for one sandboxed command: ``argv`` and its kwargs.

    ``pass_fds`` must be closed by the caller once the process has started.
    """

    argv: list[str]
    popen: dict[str, Any] = field(default_factory=dict)
    pass_fds: tuple[int, ...] = ()

    def close(self) -> None:
        for fd in self.pass_fds:
            os.close(fd)


@dataclass(frozen=True)
class Sandbox:
    """How commands are contained on this host; see the module's docstring."""

    enabled: bool = True
    network: bool = True
    readonly: tuple[str, ...] = ()
    bwrap: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Sandbox:
        """The sandbox the ``OBEYA_SANDBOX*`` variables describe; bwrap looked up on PATH."""
        env = os.environ if environ is None else environ
        mode = env.get("OBEYA_SANDBOX", "on").strip().lower() or "on"
        if mode not in {"on", "off"}:
            raise ValueError(f"OBEYA_SANDBOX must be on or off, not {mode!r}")
        network = env.get("OBEYA_SANDBOX_NETWORK", "shared").strip().lower() or "shared"
        if network not in {"shared", "none"}:
            raise ValueError(f"OBEYA_SANDBOX_NETWORK must be shared or none, not {network!r}")
        readonly = tuple(
            entry.strip()
            for entry in env.get("OBEYA_SANDBOX_READONLY", "").split(",")
            if entry.strip()
        )
        for entry in readonly:
            if not entry.startswith("/"):
                raise ValueError(f"OBEYA_SANDBOX_READONLY: {entry!r} is not an absolute path")
        return cls(
            enabled=mode == "on",
            network=network == "shared",
            readonly=readonly,
            bwrap=shutil.which("bwrap"),
        )

    @property
    def available(self) -> bool:
        """Whether a user's command may run here at all."""
        return not self.enabled or self.bwrap is not None

    def describe(self) -> str:
        """One line for ``obeya config``, the runners page and the logs."""
        if not self.enabled:
            return "off (OBEYA_SANDBOX=off): commands run unconfined, as this host's user"
        if self.bwrap is None:
            return f"unavailable: {INSTALL_HINT}"
        network = "shared network" if self.network else "no network"
        return f"bubblewrap ({self.bwrap}), {network}"

    @property
    def mode(self) -> str:
        """``bwrap``, ``off`` or ``unavailable``: what a runner reports to the server."""
        if not self.enabled:
            return "off"
        return "bwrap" if self.bwrap else "unavailable"

    def launch(
        self,
        argv: Sequence[str],
        *,
        writable: Iterable[Path] = (),
        readonly: Iterable[Path] = (),
        files: Mapping[str, bytes] | None = None,
        cwd: Path | None = None,
        keep_pid_namespace: bool = False,
    ) -> Launch:
        """The command line that runs ``argv`` inside the sandbox.

        ``files`` are put read-only at the given absolute paths inside (the job's script).
        With the sandbox off, ``files`` are written to a private temporary folder and the
        same paths are not available: callers pass file contents only when sandboxed.
        ``keep_pid_namespace`` makes the sandbox outlive ``argv``'s own process so that
        what it started in the background (a service) keeps running: used by the keeper of
        an environment's processes (`obeya.deploy.targets`), never by jobs.
        """
        if not self.enabled:
            return Launch(list(argv), {"cwd": str(cwd) if cwd else None})
        if self.bwrap is None:
            raise SandboxUnavailable()
        as_root = os.geteuid() == 0
        args = [self.bwrap, *_namespaces(as_root, self.network)]
        if not keep_pid_namespace:
            args.append("--die-with-parent")
        args += ["--hostname", "obeya-sandbox"]
        if as_root:  # no user namespace: setpriv below becomes uid 65534 for real
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        for system in SYSTEM_PATHS:
            args += _system_bind(system)
        for extra in self.readonly:
            if os.path.exists(extra):
                args += ["--ro-bind", extra, extra]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", SANDBOX_TMP]
        shown, opened = [Path(path) for path in readonly], [Path(path) for path in writable]
        args += _parents([*shown, *opened, *(Path(name) for name in files or {})])
        for path in shown:
            args += ["--ro-bind", str(path), str(path)]
        for path in opened:
            if as_root:
                hand_over(path)
            args += ["--bind", str(path), str(path)]
        fds: list[int] = []
        for inside, content in (files or {}).items():
            fd = _memory_file(content)
            fds.append(fd)
            args += ["--perms", "0644", "--ro-bind-data", str(fd), inside]
        if cwd is not None and not as_root:
            args += ["--chdir", str(cwd)]
        args.append("--")
        if as_root:
            args += [_SETPRIV, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}"]
            args += ["--clear-groups", "--no-new-privs", "--"]
            if cwd is not None:  # as uid 65534: root without capabilities may not enter it
                args += ["/usr/bin/env", f"--chdir={cwd}"]
        args += list(argv)
        return Launch(args, {"pass_fds": tuple(fds)}, tuple(fds))

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` as a sandboxed command should get it: its home is the sandbox's /tmp."""
        if not self.enabled:
            return dict(env)
        return {**env, "HOME": SANDBOX_TMP, "TMPDIR": SANDBOX_TMP}


def hand_over(top: Path) -> None:
    """Give ``top`` and everything under it to the sandbox's uid (when we run as root).

    Symlinks are changed themselves, never followed: a workspace may hold links that
    point anywhere.
    """
    os.lchown(top, SANDBOX_UID, SANDBOX_UID)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(root, name)
            try:
                if os.lstat(path).st_uid != SANDBOX_UID:
                    os.lchown(path, SANDBOX_UID, SANDBOX_UID)
            except FileNotFoundError:
                continue


def _namespaces(as_root: bool, network: bool) -> list[str]:
    """Every namespace bwrap can make; a user namespace only when we are not root."""
    spaces = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    if not as_root:
        spaces.append("--unshare-user")
    if not network:
        spaces.append("--unshare-net")
    return spaces


def _parents(paths: Iterable[Path]) -> list[str]:
    """Open (0755) folders for the parents of bound paths: bwrap would make them 0700,
    owned by root, which uid 65534 could not pass through."""
    made: list[str] = []
    for path in paths:
        for parent in reversed(Path(path).parents):
            name = str(parent)
            if name != "/" and name not in made and not name.startswith(SYSTEM_PATHS):
                made.append(name)
    return [arg for name in made for arg in ("--perms", "0755", "--dir", name)]


def _system_bind(path: str) -> list[str]:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(mode):
        return ["--symlink", os.readlink(path), path]
    return ["--ro-bind", path, path]


def _memory_file(content: bytes) -> int:
    """A descriptor of an anonymous file holding ``content``, read from its start."""
    fd = os.memfd_create("obeya-sandbox-file", os.MFD_CLOEXEC)
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@functools.cache
def configured() -> Sandbox:
    """This process's sandbox, as its environment set it when first asked."""
    return Sandbox.from_environment()


def start_command(
    sandbox: Sandbox,
    command: str,
    *,
    env: Mapping[str, str],
    output: IO[bytes] | int,
    writable: Iterable[Path] = (),
    readonly: Iterable[Path] = (),
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``bash -c command`` in ``sandbox``, in a new session, output merged into ``output``.

    The one way a command someone typed (a monitor's, a backup's, a restore drill's) is
    started; job scripts go through `obeya.runner.executor.run_script`, which shares
    `Sandbox.launch`. Raises `SandboxUnavailable` without starting anything.
    """
    launch = sandbox.launch(["bash", "-c", command], writable=writable, readonly=readonly, cwd=cwd)
    try:
        return subprocess.Popen(
            launch.argv,
            cwd=str(cwd) if cwd is not None and not sandbox.enabled else "/",
            env=sandbox.environment(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **launch.popen,
        )
    finally:
        launch.close()


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process``'s whole group (in the sandbox: its whole PID namespace) and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
