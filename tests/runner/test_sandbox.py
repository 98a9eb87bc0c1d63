"""Job scripts in the sandbox: they see their workspace and the system, nothing else (#13)."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from obeya.runner.executor import ExecResult, run_script
from obeya.runner.sandbox import SANDBOX_UID, Sandbox, SandboxUnavailable
from tests.processes import wait_until_gone

SANDBOX = Sandbox.from_environment({})  # bubblewrap is required: .ci/run installs it


def run(lines: list[str], cwd: Path, **options: Any) -> tuple[ExecResult, str]:
    chunks: list[bytes] = []
    options.setdefault("timeout_s", 20.0)
    options.setdefault("sandbox", SANDBOX)
    result = run_script(
        lines,
        cwd=cwd,
        env=options.pop("env", {}),
        on_output=chunks.append,
        cancel=threading.Event(),
        **options,
    )
    return result, b"".join(chunks).decode()


def test_a_job_sees_its_workspace_and_not_the_files_beside_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret.key").write_text("the server's key")
    (data / "obeya.sqlite3").write_text("the database")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    lines = [
        f"cat {data / 'secret.key'} || echo no-key",
        "cat ../data/obeya.sqlite3 || echo no-database",
        f"ls {tmp_path} || true",
        "echo made > here.txt",
    ]
    result, output = run(lines, workspace)
    assert result.outcome == "succeeded", output
    assert "the server's key" not in output and "the database" not in output
    assert "no-key" in output and "no-database" in output
    assert (workspace / "here.txt").read_text() == "made\n"


def test_a_job_runs_as_an_unprivileged_user_on_a_read_only_system(tmp_path: Path) -> None:
    lines = [
        "id -u",
        "cat /etc/shadow > /dev/null 2>&1 && echo shadow-read || echo shadow-closed",
        "touch /usr/obeya-was-here 2>/dev/null && echo usr-writable || echo usr-read-only",
        "grep CapEff /proc/self/status",
    ]
    result, output = run(lines, tmp_path)
    assert result.outcome == "succeeded", output
    assert f"\n{SANDBOX_UID}\n" in output
    assert "shadow-closed" in output and "usr-read-only" in output
    assert "CapEff:\t0000000000000000" in output
    assert not Path("/usr/obeya-was-here").exists()


def test_a_job_cannot_see_or_signal_the_hosts_processes(tmp_path: Path) -> None:
    me = os.getpid()
    lines = [
        f"kill -0 {me} 2>/dev/null && echo can-signal || echo cannot-signal",
        "ls /proc | grep -c '^[0-9]' ",
        f"test -e /proc/{me}/environ && echo sees-environ || echo no-environ",
    ]
    result, output = run(lines, tmp_path)
    assert result.outcome == "succeeded", output
    assert "cannot-signal" in output and "no-environ" in output
    visible = int(output.split("grep -c '^[0-9]' \n")[1].splitlines()[0])
    assert visible < 10  # its own few processes, not the host's hundreds


def test_what_a_job_leaves_running_ends_with_it_even_in_its_own_session(tmp_path: Path) -> None:
    token = f"{time.time_ns() % 10**9}.{os.getpid()}"
    result, output = run([f"setsid sleep {token} > /dev/null 2>&1 &", "echo started"], tmp_path)
    assert result.outcome == "succeeded", output
    assert wait_until_gone(f"sleep\0{token}") == []


def test_a_timeout_ends_every_process_of_the_job(tmp_path: Path) -> None:
    token = f"{time.time_ns() % 10**9}.{os.getpid()}"
    lines = [f"setsid sleep {token} &", f"sleep {token}"]
    result, _ = run(lines, tmp_path, timeout_s=0.5, kill_grace_s=0.3)
    assert (result.outcome, result.exit_code) == ("timed_out", None)
    assert wait_until_gone(f"sleep\0{token}") == []


def test_network_none_cuts_the_job_off_and_shared_does_not(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    probe = (
        "python3 -c \"import socket,sys; socket.create_connection(('127.0.0.1', "
        f"{port}), timeout=2); print('reached')\" 2>/dev/null || echo unreachable"
    )
    try:
        _, shared = run([probe], tmp_path)
        cut = Sandbox.from_environment({"OBEYA_SANDBOX_NETWORK": "none"})
        _, none = run([probe], tmp_path, sandbox=cut)
    finally:
        listener.close()
    assert "reached" in shared
    assert "unreachable" in none and "reached\n" not in none


def test_the_script_is_never_written_into_the_workspace(tmp_path: Path) -> None:
    result, output = run(['echo "$0"', "ls -A"], tmp_path)
    assert result.outcome == "succeeded"
    assert "/obeya/job.sh" in output
    assert list(tmp_path.iterdir()) == []


def test_without_bwrap_nothing_runs_and_the_error_says_what_to_install(tmp_path: Path) -> None:
    missing = Sandbox(enabled=True, bwrap=None)
    marker = tmp_path / f"ran-{uuid.uuid4().hex}"
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        run([f"touch {marker}"], tmp_path, sandbox=missing)
    assert not marker.exists()
    assert not missing.available
    assert "OBEYA_SANDBOX=off" in missing.describe()


def test_settings_are_read_and_checked() -> None:
    off = Sandbox.from_environment({"OBEYA_SANDBOX": "off"})
    assert not off.enabled and off.available and off.mode == "off"
    assert "unconfined" in off.describe()
    with pytest.raises(ValueError, match="OBEYA_SANDBOX must be on or off"):
        Sandbox.from_environment({"OBEYA_SANDBOX": "maybe"})
    with pytest.raises(ValueError, match="OBEYA_SANDBOX_NETWORK"):
        Sandbox.from_environment({"OBEYA_SANDBOX_NETWORK": "host"})
    with pytest.raises(ValueError, match="not an absolute path"):
        Sandbox.from_environment({"OBEYA_SANDBOX_READONLY": "opt/tools"})
