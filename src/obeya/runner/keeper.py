"""A sandbox kept per deployment root, which release hooks enter one after another.

A restart hook starts a service that must outlive the hook, and the next restart hook must
be able to stop it. A sandbox per command would end the service with its hook (its PID
namespace ends), and would hide the service from the next hook. So each local deployment
root gets one long-lived sandbox, the *keeper*: `Sandbox.launch` with the root as its only
writable folder, running a shell that only waits. Each hook is started inside the keeper's
namespaces with ``nsenter``, as uid 65534, and the services it starts live on in there,
reparented to the keeper's init. The keeper survives ``obeya serve``'s restarts (it runs in
a session of its own); where it is gone (the machine restarted), the next hook starts a
new one.

Which keeper belongs to a root is kept in ``<state>/<hash>.json``: the pid of the keeper's
init, checked against its command line before use, so a reused pid is never entered.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

from obeya.runner.sandbox import SANDBOX_UID, Sandbox, hand_over

NSENTER = "/usr/bin/nsenter"
SETPRIV = "/usr/bin/setpriv"
MARK = "obeya-keeper"
# The keeper's only work: saying it is ready (its mounts are in place), then being there.
_WAIT = "echo ready; exec >/dev/null; while :; do sleep 3600; done"


class Keepers:
    """The keepers of the deployment roots on this machine; records kept in ``state``."""

    def __init__(self, sandbox: Sandbox, state: Path) -> None:
        self.sandbox = sandbox
        self.state = state

    def command(self, root: Path, argv: list[str], cwd: Path) -> list[str]:
        """The command line that runs ``argv`` in ``root``'s keeper, in ``cwd``.

        Starts the keeper when there is none. With the sandbox off, ``argv`` run in ``cwd``.
        """
        if not self.sandbox.enabled:
            return ["/usr/bin/env", f"--chdir={cwd}", *argv]
        pid = self._keeper(root)
        as_root = os.geteuid() == 0
        if as_root:
            hand_over(root)  # what the deployer unpacked since belongs to the sandbox's uid
        spaces = ["--mount", "--pid", "--ipc", "--uts"]
        if not self.sandbox.network:
            spaces.append("--net")
        enter = [NSENTER, f"--target={pid}", *spaces, "--root"]
        if not as_root:
            enter += ["--user", f"--setuid={SANDBOX_UID}", f"--setgid={SANDBOX_UID}"]
        drop = [SETPRIV, "--no-new-privs"]
        if as_root:
            drop += [f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups"]
            drop += ["--inh-caps=-all", "--bounding-set=-all"]
        # The folder is entered inside (nsenter's --wd would keep the host's view of it).
        return [*enter, "--", *drop, "--", "/usr/bin/env", f"--chdir={cwd}", *argv]

    def _keeper(self, root: Path) -> int:
        self.state.mkdir(parents=True, exist_ok=True)
        record = self.state / f"{hashlib.sha256(str(root).encode()).hexdigest()[:24]}.json"
        with open(record.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one keeper per root, whichever thread asks
            pid = _recorded(record, root)
            if pid is None:
                pid = self._start(root)
                partial = record.with_suffix(".partial")
                partial.write_text(json.dumps({"pid": pid, "root": str(root)}))
                partial.replace(record)
            return pid

    def _start(self, root: Path) -> int:
        read, write = os.pipe()
        launch = self.sandbox.launch(
            ["/bin/sh", "-c", _WAIT, MARK, str(root)],
            writable=[root],
            cwd=root,
            keep_pid_namespace=True,
        )
        argv = [launch.argv[0], "--info-fd", str(write), *launch.argv[1:]]
        fds = (*launch.popen.get("pass_fds", ()), write)
        try:
            process = subprocess.Popen(
                argv,
                cwd="/",
                env={"PATH": "/usr/bin:/bin"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=fds,
            )
        finally:
            launch.close()
            os.close(write)
        assert process.stdout is not None
        with process.stdout:
            ready = process.stdout.readline()
        # Reaped when it ends, so that a keeper that dies leaves no zombie behind.
        threading.Thread(target=process.wait, name="obeya-keeper-reaper", daemon=True).start()
        with os.fdopen(read, "rb") as info:
            line = info.read()  # bwrap writes it, then closes it, once the namespaces exist
        try:
            if ready.strip() != b"ready":
                raise ValueError("it ended before it was ready")
            return int(json.loads(line)["child-pid"])
        except (ValueError, KeyError) as error:
            process.kill()
            raise RuntimeError(f"the sandbox of {root} did not start: {error}") from error


def _recorded(record: Path, root: Path) -> int | None:
    """The keeper's pid from ``record``, if that process is still ``root``'s keeper."""
    try:
        pid = int(json.loads(record.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None
    with contextlib.suppress(OSError):
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if MARK.encode() in words and str(root).encode() in words:
            return pid
    return None


def stop(record: Path) -> bool:
    """End the keeper ``record`` names, and with it everything its hooks started (the PID
    namespace ends with its init). Whether there was one to end."""
    try:
        root = Path(json.loads(record.read_text())["root"])
    except (OSError, ValueError, KeyError):
        return False
    pid = _recorded(record, root)
    record.unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    return True


def stop_all(state: Path) -> int:
    """End every keeper recorded in ``state``; how many there were."""
    return sum(stop(record) for record in sorted(state.glob("*.json")))
