"""Running one monitor check: an HTTP request through the outbound allow-list, or a
command in its own process group; both cut at the monitor's timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass

import httpx

from obeya.core import outbound

COMMAND_OUTPUT_LIMIT = 300


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


def command_check(command: str, timeout_s: float, env: dict[str, str]) -> Outcome:
    """Run ``command`` with bash in a new process group; kill the group at the timeout."""
    started = time.monotonic()
    process = subprocess.Popen(
        ["bash", "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return Outcome(False, _since(started), f"no answer within {timeout_s:g} s: killed")
    text = output.decode(errors="replace").strip().splitlines()
    last = text[-1][:COMMAND_OUTPUT_LIMIT] if text else ""
    if process.returncode != 0:
        return Outcome(False, _since(started), f"exit code {process.returncode}: {last}".strip())
    return Outcome(True, _since(started), last or "exit code 0")


def _since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
