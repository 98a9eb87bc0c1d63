"""Running job scripts: exit codes, output, timeouts and cancel kill the whole tree (C4).

These tests look at the processes from the host, so they run scripts unsandboxed, as
``OBEYA_SANDBOX=off`` does; tests/runner/test_sandbox.py runs them in the sandbox.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from obeya.runner.executor import ExecResult, render_script, run_script
from obeya.runner.sandbox import Sandbox


def run(
    lines: list[str], cwd: Path, env: dict[str, str] | None = None, **options: Any
) -> tuple[ExecResult, bytes]:
    chunks: list[bytes] = []
    options.setdefault("timeout_s", 10.0)
    options.setdefault("cancel", threading.Event())
    options.setdefault("sandbox", Sandbox(enabled=False))
    result = run_script(lines, cwd=cwd, env=env or {}, on_output=chunks.append, **options)
    return result, b"".join(chunks)


def alive(pid: int) -> bool:
    """Whether `pid` runs. A zombie counts as dead: PID 1 here may never reap orphans."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def assert_dead(pids: list[int]) -> None:
    deadline = time.monotonic() + 2
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not [pid for pid in pids if alive(pid)]


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


def test_success_echoes_each_line_then_its_output(tmp_path: Path) -> None:
    result, output = run(["echo hello", "true"], tmp_path)
    assert (result.exit_code, result.outcome) == (0, "succeeded")
    assert output == b"$ echo hello\nhello\n$ true\n"
    assert result.duration_s >= 0


def test_exit_code_is_reported(tmp_path: Path) -> None:
    result, _ = run(["exit 7"], tmp_path)
    assert (result.exit_code, result.outcome) == (7, "failed")


def test_death_by_signal_reads_like_a_shell_exit_code(tmp_path: Path) -> None:
    result, _ = run(["kill -9 $$"], tmp_path)
    assert (result.exit_code, result.outcome) == (137, "failed")


def test_set_e_stops_at_the_first_failing_line(tmp_path: Path) -> None:
    result, output = run(["echo one", "false", "echo two"], tmp_path)
    assert (result.exit_code, result.outcome) == (1, "failed")
    assert output == b"$ echo one\none\n$ false\n"


def test_pipefail_fails_a_pipeline_whose_first_command_fails(tmp_path: Path) -> None:
    result, output = run(["false | cat", "echo after"], tmp_path)
    assert result.outcome == "failed"
    assert b"after\n" not in output


def test_stdout_and_stderr_are_merged_in_order(tmp_path: Path) -> None:
    result, output = run(["echo out1", "echo err1 >&2", "echo out2; echo err2 >&2"], tmp_path)
    assert result.outcome == "succeeded"
    assert output.splitlines() == [
        b"$ echo out1",
        b"out1",
        b"$ echo err1 >&2",
        b"err1",
        b"$ echo out2; echo err2 >&2",
        b"out2",
        b"err2",
    ]


def test_lines_share_one_shell(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    result, output = run(["cd sub", "X=5", 'echo "$X $(basename "$PWD")"'], tmp_path)
    assert result.outcome == "succeeded"
    assert output.endswith(b"5 sub\n")


def test_a_multi_line_command_is_one_step(tmp_path: Path) -> None:
    line = "for i in 1 2; do\n  echo $i\ndone"
    result, output = run([line, "echo end"], tmp_path)
    assert result.outcome == "succeeded"
    assert output == f"$ {line}\n1\n2\n$ echo end\nend\n".encode()


def test_a_line_with_an_unclosed_quote_fails_alone(tmp_path: Path) -> None:
    result, output = run(["echo 'unclosed", "echo after"], tmp_path)
    assert result.outcome == "failed"
    assert b"after" not in output


def test_values_from_env_stay_literal(tmp_path: Path) -> None:
    marker = tmp_path / "x"
    branch = 'zzz";echo${IFS}pwned;#'
    message = f"fix: $(touch {marker}) and `touch {marker}`"
    result, output = run(
        [
            'echo "$CI_COMMIT_BRANCH"',
            "echo $CI_COMMIT_BRANCH",
            'echo "$CI_COMMIT_MESSAGE"',
            'git_ref="refs/heads/$CI_COMMIT_BRANCH"; echo "$git_ref"',
        ],
        tmp_path,
        env={"CI_COMMIT_BRANCH": branch, "CI_COMMIT_MESSAGE": message},
    )
    assert result.outcome == "succeeded"
    lines = output.decode().splitlines()
    assert lines[1] == lines[3] == branch
    assert lines[5] == message
    assert lines[7] == f"refs/heads/{branch}"
    assert "pwned" not in [line.strip() for line in lines]
    assert not marker.exists()


def test_the_echoed_line_is_shown_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "echoed"
    line = f"echo '$(touch {marker})' \"it's\" '100%s\\n'"
    result, output = run([line], tmp_path)
    assert result.outcome == "succeeded"
    assert output.decode().splitlines() == [f"$ {line}", f"$(touch {marker}) it's 100%s\\n"]
    assert not marker.exists()
    assert "printf '$ %s\\n' '" in render_script([line])


def test_the_runner_environment_is_not_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OBEYA_RUNNER_PRIVATE", "leaked")
    result, output = run(
        ['echo "${OBEYA_RUNNER_PRIVATE:-absent} $FOO"', 'test -n "$PATH" && test -n "$HOME"'],
        tmp_path,
        env={"FOO": "bar"},
    )
    assert result.outcome == "succeeded"
    assert b"absent bar\n" in output


@pytest.mark.parametrize("name", ["BASH_FUNC_ls%%", "1ABC", "A=B", ""])
def test_variable_names_must_be_identifiers(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a valid shell identifier"):
        run(["ls"], tmp_path, env={name: "() { echo pwned; }"})


def test_the_script_lives_outside_the_workspace_and_is_removed(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    result, output = run(['echo "$0"'], workspace, script_dir=tmp_path)
    script = Path(output.splitlines()[-1].decode())
    assert result.outcome == "succeeded"
    assert script.parent == tmp_path
    assert not script.exists()
    assert list(workspace.iterdir()) == []


def test_timeout_kills_the_whole_group_including_grandchildren(tmp_path: Path) -> None:
    lines = [
        "sleep 1000 & echo $! > bg.pid",
        "bash -c 'sleep 1000' & echo $! > bash.pid",
        "bash -c 'sleep 1000 & echo $! > inner.pid; wait' &",
        "until [ -s inner.pid ]; do sleep 0.01; done",
        "sleep 1000",
    ]
    result, _ = run(lines, tmp_path, timeout_s=0.5, kill_grace_s=0.5)
    assert (result.outcome, result.exit_code) == ("timed_out", None)
    assert 0.5 <= result.duration_s < 3
    assert_dead([read_pid(tmp_path / name) for name in ("bg.pid", "bash.pid", "inner.pid")])


def test_a_process_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    lines = ["(trap '' TERM; exec sleep 1000) & echo $! > stubborn.pid", "sleep 1000"]
    result, _ = run(lines, tmp_path, timeout_s=0.3, kill_grace_s=0.4)
    assert result.outcome == "timed_out"
    assert result.duration_s >= 0.7
    assert_dead([read_pid(tmp_path / "stubborn.pid")])


def test_background_leftovers_are_stopped_when_the_script_ends(tmp_path: Path) -> None:
    result, _ = run(["sleep 1000 > /dev/null 2>&1 & echo $! > bg.pid"], tmp_path)
    assert result.outcome == "succeeded"
    assert_dead([read_pid(tmp_path / "bg.pid")])


def test_a_process_that_left_the_group_cannot_hang_the_runner(tmp_path: Path) -> None:
    # `setsid` escapes the process group (documented limit) and keeps the output pipe open.
    result, _ = run(["setsid sleep 30 & echo $! > escaped.pid"], tmp_path, kill_grace_s=0.2)
    escaped = read_pid(tmp_path / "escaped.pid")
    try:
        assert result.outcome == "succeeded"
        assert result.duration_s < 5
    finally:
        os.kill(escaped, signal.SIGKILL)


def test_cancel_while_running_delivers_output_without_newline_first(tmp_path: Path) -> None:
    cancel = threading.Event()
    seen = bytearray()

    def on_output(chunk: bytes) -> None:
        seen.extend(chunk)
        if b"partial" in seen:
            cancel.set()

    lines = ["echo $$ > shell.pid; printf partial", "sleep 1000"]
    result = run_script(
        lines,
        cwd=tmp_path,
        env={},
        timeout_s=30,
        on_output=on_output,
        cancel=cancel,
        flush_interval_s=0.05,
        kill_grace_s=0.5,
        sandbox=Sandbox(enabled=False),
    )
    assert (result.outcome, result.exit_code) == ("canceled", None)
    assert result.duration_s < 5
    assert b"partial" in seen
    assert_dead([read_pid(tmp_path / "shell.pid")])


def test_cancel_before_start_runs_nothing(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    result, output = run(["touch ran"], tmp_path, cancel=cancel)
    assert (result.outcome, output) == ("canceled", b"")
    assert not (tmp_path / "ran").exists()


def test_a_failing_output_sink_stops_the_job_and_raises(tmp_path: Path) -> None:
    def on_output(chunk: bytes) -> None:
        if b"ready" in chunk:
            raise RuntimeError("log upload broke")

    lines = ["echo $$ > shell.pid; echo ready", "sleep 1000"]
    with pytest.raises(RuntimeError, match="log upload broke"):
        run_script(
            lines,
            cwd=tmp_path,
            env={},
            timeout_s=30,
            on_output=on_output,
            cancel=threading.Event(),
            flush_interval_s=0.05,
            kill_grace_s=0.5,
            sandbox=Sandbox(enabled=False),
        )
    assert_dead([read_pid(tmp_path / "shell.pid")])


def test_five_megabytes_stream_through_in_bounded_chunks(tmp_path: Path) -> None:
    size = 5_000_000
    line = f"head -c {size} /dev/zero | tr '\\0' x"
    sizes: list[int] = []

    def on_output(chunk: bytes) -> None:
        sizes.append(len(chunk))

    tracemalloc.start()
    try:
        result = run_script(
            [line],
            cwd=tmp_path,
            env={},
            timeout_s=30,
            on_output=on_output,
            cancel=threading.Event(),
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.outcome == "succeeded"
    assert sum(sizes) == len(f"$ {line}\n") + size
    assert max(sizes) <= 64 * 1024
    assert len(sizes) >= size // (64 * 1024)
    assert peak < 2_000_000


def test_waiting_for_a_script_is_not_a_busy_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script that closed its output but runs on is waited for, not spun on."""
    from obeya.runner import executor

    looks = 0
    has_exited = executor._has_exited

    def counted(pid: int) -> bool:
        nonlocal looks
        looks += 1
        return has_exited(pid)

    monkeypatch.setattr(executor, "_has_exited", counted)
    result, _ = run(["exec >/dev/null 2>&1", "sleep 1"], tmp_path)
    assert result.outcome == "succeeded"
    # Every 20 ms at most (a cancel is noticed that fast); a spin made tens of thousands.
    assert looks < 2000
