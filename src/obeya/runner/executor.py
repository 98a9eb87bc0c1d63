"""Run one job script in its own process group, stream its output, stop it cleanly.

`run_script` writes the job's lines into a bash script outside the workspace, runs it in a
new session (so the whole process tree shares one process group), and hands its merged
stdout and stderr to `on_output` in chunks as they come. On timeout or cancel the group
gets SIGTERM, a grace period, then SIGKILL. Processes the script leaves running in the
background are stopped the same way once it ends, so a job never outlives itself.

In the sandbox (`obeya.runner.sandbox`) the script has a PID namespace of its own, which
ends with it: a process it started in its own session (`setsid`, a daemon) ends too.
Without the sandbox (``OBEYA_SANDBOX=off``), such a process leaves the group and is not
reached; nor is one running as another user (`sudo`).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import selectors
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from obeya.runner import threads
from obeya.runner.sandbox import Sandbox, configured

Outcome = Literal["succeeded", "failed", "timed_out", "canceled"]

DEFAULT_KILL_GRACE_S = 5.0
MAX_CHUNK_BYTES = 64 * 1024
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_POLL_S = 0.02  # how soon a cancel or a timeout is noticed while the script runs
_FALLBACK_POLL_S = 0.002  # without a pidfd: how often to look whether the script exited
_IDLE_WAKE_S = 0.1  # how often an idle output reader checks whether it was told to stop
_DRAIN_S = 1.0  # after the group is dead, how long to wait for the pipe to reach EOF
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BASH = ("bash", "--noprofile", "--norc", "-e", "-o", "pipefail")
SANDBOX_SCRIPT = "/obeya/job.sh"  # where a sandboxed job finds its script, read-only


@dataclass(frozen=True)
class ExecResult:
    """How a script run ended. `exit_code` is None when the runner stopped it."""

    exit_code: int | None
    outcome: Outcome
    duration_s: float


def run_script(
    lines: Sequence[str],
    *,
    cwd: Path | str,
    env: Mapping[str, str],
    timeout_s: float,
    on_output: Callable[[bytes], None],
    cancel: threading.Event,
    flush_interval_s: float = 0.25,
    kill_grace_s: float = DEFAULT_KILL_GRACE_S,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
    script_dir: Path | None = None,
    sandbox: Sandbox | None = None,
) -> ExecResult:
    """Run `lines` as one bash script in `cwd` and report how it ended.

    Each line is echoed as `$ <line>` and then run with `bash -e -o pipefail` semantics:
    the first failing line ends the script. The lines share one shell, so `cd` and
    variables carry over. Values reach the script only through `env` (see
    `job_environment`), never as shell text.

    `on_output` gets chunks of at most `max_chunk_bytes`, at least every
    `flush_interval_s` while output is arriving, newline or not. It is called from a
    reader thread, one call at a time; a slow consumer slows the job (the pipe fills)
    rather than growing memory. If `on_output` raises, the job is stopped as if canceled
    and the exception is re-raised once its processes are gone.

    A process killed by a signal it did not get from us exits with 128 + the signal
    number, as a shell reports it.

    With `sandbox` on (see `obeya.runner.sandbox`), the script runs in it with `cwd` as
    its only writable folder; the script itself is handed in read-only, never written
    to the host.
    """
    started = time.monotonic()
    if cancel.is_set():
        return ExecResult(exit_code=None, outcome="canceled", duration_s=0.0)
    environment = job_environment(env)
    sandbox = sandbox if sandbox is not None else configured()
    if sandbox.enabled:
        launch = sandbox.launch(
            [*_BASH, SANDBOX_SCRIPT],
            writable=[Path(cwd)],
            files={SANDBOX_SCRIPT: render_script(lines).encode("utf-8", "surrogateescape")},
            cwd=Path(cwd),
        )
        script: Path | None = None
        argv, popen, where = launch.argv, launch.popen, "/"
        environment = sandbox.environment(environment)
    else:
        script = _write_script(lines, script_dir)
        argv, popen, where = [*_BASH, str(script)], {}, str(cwd)
    try:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=where,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen,
            )
        finally:
            if sandbox.enabled:
                launch.close()
        assert proc.stdout is not None
        reader = _OutputReader(proc.stdout.fileno(), on_output, flush_interval_s, max_chunk_bytes)
        exit_watch = _ExitWatch(proc.pid)
        try:
            # The first interval's output is read here, waiting for it and for the exit
            # at once: most short scripts are over by then and need no reader thread.
            reader.read_inline(exit_watch, started + min(flush_interval_s, timeout_s), cancel)
            if not exit_watch.exited():
                reader.start()  # from here a thread reads, as long as the job runs
            stopped = _wait(exit_watch, started + timeout_s, cancel, reader)
        finally:  # also when interrupted: the job never outlives this call
            _stop_group(exit_watch, reader, kill_grace_s)
            exit_watch.close()
            returncode = proc.wait()
            reader.join(_DRAIN_S)
            if reader.is_alive():  # a process outside the group still holds the pipe
                reader.stop.set()
                reader.join()
            proc.stdout.close()
    finally:
        if script is not None:
            script.unlink(missing_ok=True)
    if reader.error is not None:
        raise reader.error
    duration = time.monotonic() - started
    if stopped is not None:
        return ExecResult(exit_code=None, outcome=stopped, duration_s=duration)
    exit_code = returncode if returncode >= 0 else 128 - returncode
    outcome: Outcome = "succeeded" if exit_code == 0 else "failed"
    return ExecResult(exit_code=exit_code, outcome=outcome, duration_s=duration)


def job_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a job runs with: a minimal base plus the job's own variables.

    The runner's own environment is not inherited: it may hold the runner's token,
    proxy credentials or other jobs' leftovers. Only PATH, HOME and LANG come from it, so
    the tools installed for the runner's user are found; the job's `env` overrides them.
    Names must be shell identifiers: bash turns names like `BASH_FUNC_ls%%` into
    functions, which would let a variable's name run code.
    """
    base = {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": os.environ.get("HOME") or tempfile.gettempdir(),
        "LANG": os.environ.get("LANG") or "C.UTF-8",
    }
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(
                f"Variable name {name!r} is not a valid shell identifier: use letters, "
                "digits and underscores, not starting with a digit."
            )
        if "\x00" in value:
            raise ValueError(f"Variable {name} contains a NUL byte, which no process can see.")
    return {**base, **env}


def render_script(lines: Sequence[str]) -> str:
    """The bash text for `lines`: each one echoed, then run by `eval` of a quoted literal.

    The line is only ever a single-quoted word here (shlex.quote), so nothing in it can end
    the echo or leak into the next line, and a line with an unclosed quote fails alone.
    """
    parts = ["# Written by the Obeya runner: each step is echoed, then evaluated.\n"]
    for number, line in enumerate(lines, start=1):
        if "\x00" in line:
            raise ValueError(f"Script line {number} contains a NUL byte, which bash cannot run.")
        literal = shlex.quote(line)
        parts.append(f"printf '$ %s\\n' {literal}\neval {literal}\n")
    return "".join(parts)


def _write_script(lines: Sequence[str], script_dir: Path | None) -> Path:
    """Write the script to a private temp file, outside the workspace the job can change."""
    fd, name = tempfile.mkstemp(prefix="obeya-job-", suffix=".sh", dir=script_dir)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as script:
        script.write(render_script(lines))
    return Path(name)


class _ExitWatch:
    """Waits for one child to exit, woken by the exit itself where the kernel can tell
    (a pidfd, Linux 5.3+), otherwise by short sleeps; never a busy loop."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux, or an old kernel
            self._fd = None

    def exited(self) -> bool:
        """Whether the child has exited, leaving it unreaped (a zombie) if so."""
        return _has_exited(self.pid)

    def sleep(self, timeout_s: float) -> None:
        """Up to ``timeout_s``, less if the child exits meanwhile."""
        if self._fd is None:
            time.sleep(min(timeout_s, _FALLBACK_POLL_S))
        else:
            select.select([self._fd], [], [], max(0.0, timeout_s))

    @property
    def fd(self) -> int | None:
        """A descriptor that turns readable when the child exits (None without pidfds)."""
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _wait(
    child: _ExitWatch, deadline: float, cancel: threading.Event, reader: _OutputReader
) -> Outcome | None:
    """Wait for the script to end; return why we must stop it instead, if we must."""
    while not child.exited():
        if cancel.is_set() or reader.failed.is_set():
            return "canceled"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timed_out"
        child.sleep(min(_POLL_S, remaining))  # woken by the exit, or to look at cancel
    return None


def _stop_group(child: _ExitWatch, reader: _OutputReader, grace_s: float) -> None:
    """SIGTERM the group, give it `grace_s` to go, then SIGKILL whatever is left.

    The leader is not reaped until this returns, so its pid (the group id) cannot be
    reused by an unrelated process group while we are still signalling it.
    """
    pgid = child.pid
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while (remaining := deadline - time.monotonic()) > 0:
        if not child.exited():
            child.sleep(min(_POLL_S, remaining))
        elif reader.done.is_set():
            break
        else:  # the leader is gone; the pipe closes when the rest of the group goes
            reader.join(min(_POLL_S, remaining))
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    # Already gone, or only processes we may not signal (another user's) are left.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _has_exited(pid: int) -> bool:
    """Whether our child `pid` has exited, leaving it unreaped (a zombie) if so."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


class _OutputReader:
    """Reads the job's pipe and hands it on in bounded, timely chunks: in the job's own
    thread for the first interval (`read_inline`), then, if the job still runs, on a kept
    thread (`start`)."""

    def __init__(
        self,
        fd: int,
        on_output: Callable[[bytes], None],
        flush_interval_s: float,
        max_chunk_bytes: int,
    ) -> None:
        self._fd = fd
        self._on_output = on_output
        self._interval = flush_interval_s
        self._max = max_chunk_bytes
        self.stop = threading.Event()
        self.done = threading.Event()
        self.failed = threading.Event()
        self.error: Exception | None = None
        self._task: threads.Task | None = None
        self._pending = bytearray()
        self._first_byte_at = 0.0
        self._eof = False
        self._selector = selectors.DefaultSelector()
        self._selector.register(fd, selectors.EVENT_READ, "output")

    def read_inline(self, child: _ExitWatch, until: float, cancel: threading.Event) -> None:
        """Read in the calling thread until ``until``, the child's exit or a cancel: a
        short script is read to its end without a thread of its own."""
        if child.fd is not None:
            self._selector.register(child.fd, selectors.EVENT_READ, "exit")
        try:
            while not self._eof and (remaining := until - time.monotonic()) > 0:
                ready = self._step(min(remaining, _POLL_S))
                if "exit" in ready or self.failed.is_set() or cancel.is_set():
                    break
                if child.fd is None and child.exited():
                    break
        finally:
            if child.fd is not None:
                self._selector.unregister(child.fd)
        if self._eof:
            self._finish()

    def start(self) -> None:
        self._task = threads.spawn(self.run, "obeya-job-output")

    def join(self, timeout: float | None = None) -> None:
        """Until the output has ended (or ``timeout``); read here while no thread reads."""
        if self._task is not None or self.done.is_set():
            self.done.wait(timeout)
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._eof and not self.stop.is_set():
            remaining = _IDLE_WAKE_S if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return
            self._step(min(remaining, _IDLE_WAKE_S))
        self._finish()

    def is_alive(self) -> bool:
        return not self.done.is_set()

    def run(self) -> None:
        try:
            while not self.stop.is_set() and not self._eof:
                self._step(_IDLE_WAKE_S)
        finally:
            self._finish()

    def _step(self, timeout_s: float) -> set[str]:
        """Wait up to ``timeout_s`` (less when a chunk is due) for output; read it, and
        hand on what is due. Which of the watched descriptors turned readable."""
        wait = timeout_s
        if self._pending:
            wait = min(wait, max(0.0, self._first_byte_at + self._interval - time.monotonic()))
        ready = {str(key.data) for key, _ in self._selector.select(wait)}
        if "output" in ready:
            data = os.read(self._fd, self._max - len(self._pending))
            if not data:
                self._eof = True
            else:
                if not self._pending:
                    self._first_byte_at = time.monotonic()
                self._pending += data
        due = time.monotonic() - self._first_byte_at >= self._interval
        if self._pending and (len(self._pending) >= self._max or due):
            self._deliver(bytes(self._pending))
            self._pending.clear()
        return ready

    def _finish(self) -> None:
        if self.done.is_set():
            return
        try:
            if self._pending:
                self._deliver(bytes(self._pending))
                self._pending.clear()
        finally:
            self._selector.close()
            self.done.set()

    def _deliver(self, chunk: bytes) -> None:
        if self.error is not None:
            return  # keep draining the pipe so the job is not blocked while it is stopped
        try:
            self._on_output(chunk)
        except Exception as exc:
            self.error = exc
            self.failed.set()
