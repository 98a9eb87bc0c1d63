"""Running one monitor check: an HTTP request through the outbound allow-list, or a
command in the sandbox (`obeya.runner.sandbox`); both cut at the monitor's timeout."""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from django.conf import settings

from obeya.core import outbound
from obeya.runner import sandbox

COMMAND_OUTPUT_LIMIT = 300
SERVER_COMMANDS_OFF = "not run: this server runs no command monitors (OBEYA_SERVER_COMMANDS=off)"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    latency_ms: float
    detail: str


def http_check(
    url: str, policy: outbound.Policy, timeout_s: float, expect_status: int, contains: str
) -> Outcome:
    started = time.monotonic()
    try:
        response = outbound.request("GET", url, policy, timeout=timeout_s)
    except outbound.OutboundRefused as refused:
        return Outcome(False, _since(started), refused.message[:COMMAND_OUTPUT_LIMIT])
    except httpx.TimeoutException:
        return Outcome(False, _since(started), f"GET {url}: no answer within {timeout_s:g} s")
    except httpx.HTTPError as error:
        return Outcome(False, _since(started), f"GET {url}: {type(error).__name__}: {error}"[:300])
    latency = _since(started)
    if response.status_code != expect_status:
        return Outcome(False, latency, f"HTTP {response.status_code}, expected {expect_status}")
    if contains and contains not in response.text:
        return Outcome(
            False, latency, f"HTTP {response.status_code} but the body lacks {contains!r}"
        )
    return Outcome(True, latency, f"HTTP {response.status_code}")


def command_check(
    command: str, timeout_s: float, env: dict[str, str], box: sandbox.Sandbox | None = None
) -> Outcome:
    """Run ``command`` in the sandbox, in an empty folder of its own; kill it at the timeout."""
    started = time.monotonic()
    if not settings.OBEYA_SERVER_COMMANDS:
        return Outcome(False, 0.0, SERVER_COMMANDS_OFF)
    box = box or sandbox.configured()
    with tempfile.TemporaryDirectory(prefix="obeya-check-") as folder, tempfile.TemporaryFile(
    ) as output:
        try:
            process = sandbox.start_command(
                box, command, env=env, output=output, writable=[Path(folder)], cwd=Path(folder)
            )
        except sandbox.SandboxUnavailable as missing:
            return Outcome(False, _since(started), missing.message[:COMMAND_OUTPUT_LIMIT])
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            sandbox.kill_group(process)
            return Outcome(False, _since(started), f"no answer within {timeout_s:g} s: killed")
        output.seek(max(0, output.seek(0, 2) - 4096))  # the tail: a check may print a lot
        text = output.read().decode(errors="replace").strip().splitlines()
    last = text[-1][:COMMAND_OUTPUT_LIMIT] if text else ""
    if process.returncode != 0:
        return Outcome(False, _since(started), f"exit code {process.returncode}: {last}".strip())
    return Outcome(True, _since(started), last or "exit code 0")


def _since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
