"""Release hooks run in their deployment root's sandbox, which outlives them (#13)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.conf import settings

from obeya.deploy import deployer
from obeya.deploy.targets import LocalHost
from obeya.runner import keeper
from obeya.runner.sandbox import SANDBOX_UID, Sandbox
from tests.processes import processes_with, wait_until_gone


def _run(host: LocalHost, command: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    env = {"PATH": os.environ["PATH"], "OBEYA_ROOT": host.root}
    return host.run(command, env, host.root, 20, lines.append), lines


def test_a_hook_sees_its_root_and_not_the_data_directory(tmp_path: Path) -> None:
    data = Path(settings.DATA_DIR)
    data.mkdir(parents=True, exist_ok=True)
    (data / "secret_key").write_text("the server's key")
    host = LocalHost(str(tmp_path / "target"), deployer.keepers())
    host.prepare()
    code, lines = _run(
        host,
        f"id -u; cat {data / 'secret_key'} || echo key-closed; "
        'echo written > "$OBEYA_ROOT/shared/made"; kill -0 1 2>/dev/null || echo no-init',
    )
    assert code == 0, lines
    assert lines[0] == str(SANDBOX_UID)
    assert "key-closed" in lines and "the server's key" not in lines
    assert (tmp_path / "target" / "shared" / "made").read_text() == "written\n"


def test_a_service_a_hook_starts_outlives_it_and_the_next_hook_stops_it(tmp_path: Path) -> None:
    """The restart-hook pattern: start a detached service, keep its pid; the next restart
    stops that pid. Only the root's sandbox ending ends what is left."""
    token = f"{time.time_ns() % 10**9}.{os.getpid()}"
    host = LocalHost(str(tmp_path / "target"), deployer.keepers())
    host.prepare()
    start = f'setsid sleep {token} >/dev/null 2>&1 & echo $! > "$OBEYA_ROOT/shared/app.pid"'
    code, lines = _run(host, start)
    assert code == 0, lines
    assert len(processes_with(f"sleep\0{token}")) == 1  # still running after the hook
    code, lines = _run(host, 'kill "$(cat "$OBEYA_ROOT/shared/app.pid")" && echo stopped')
    assert (code, lines) == (0, ["stopped"])
    assert wait_until_gone(f"sleep\0{token}") == []

    _run(host, start)
    assert keeper.stop_all(Path(settings.DATA_DIR) / "keepers") == 1
    assert wait_until_gone(f"sleep\0{token}") == []


def test_each_root_has_its_own_sandbox(tmp_path: Path) -> None:
    keepers = deployer.keepers()
    staging = LocalHost(str(tmp_path / "staging"), keepers)
    production = LocalHost(str(tmp_path / "production"), keepers)
    for host in (staging, production):
        host.prepare()
    code, lines = _run(staging, f"ls {tmp_path / 'production'} || echo production-hidden")
    assert code == 0 and "production-hidden" in lines
    code, lines = _run(production, "sleep 0.01; ps -e -o comm= | grep -c sleep || true")
    assert code == 0


def test_with_the_sandbox_off_a_hook_runs_in_its_folder_unconfined(tmp_path: Path) -> None:
    keepers = keeper.Keepers(Sandbox(enabled=False), Path(settings.DATA_DIR) / "keepers")
    host = LocalHost(str(tmp_path / "target"), keepers)
    host.prepare()
    code, lines = _run(host, "pwd; id -u")
    assert (code, lines) == (0, [host.root, str(os.getuid())])
