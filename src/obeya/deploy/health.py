"""Health checks after a switch: an HTTP URL or a command, judged over a warm-up window."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from django.conf import settings

from obeya.core import outbound
from obeya.deploy import reach
from obeya.deploy.logic import WarmUp
from obeya.deploy.targets import Host, LogLine

HTTP_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 30.0


def host_address(host: Host) -> str:
    """The address a health URL's ``{host}`` stands for (the SSH host without its port)."""
    return reach.address_of(host.name)


def check_once(
    health: Mapping[str, Any],
    host: Host,
    env: Mapping[str, str],
    log: LogLine,
    policy: outbound.Policy | None = None,
) -> tuple[bool, str]:
    """One check: (healthy, what was seen). An HTTP check goes through ``policy``: the
    environment's allow-list (`reach.policy_for`), by default the setting alone."""
    if health.get("kind") == "http":
        url = str(health["url"]).replace("{host}", host_address(host))
        expected = int(health.get("expect_status", 200))
        allowed = policy or outbound.policy_from(settings.OBEYA_OUTBOUND_ALLOW)
        try:
            response = outbound.request(
                "GET", url, allowed, timeout=HTTP_TIMEOUT_S, follow_redirects=False
            )
        except outbound.OutboundRefused as refused:
            return False, refused.message
        except httpx.HTTPError as error:
            return False, f"GET {url}: {type(error).__name__}: {error}"
        if response.status_code != expected:
            return False, f"GET {url}: HTTP {response.status_code}, expected {expected}"
        contains = health.get("contains")
        if contains and str(contains) not in response.text:
            return False, f"GET {url}: body lacks {contains!r}"
        return True, f"GET {url}: HTTP {response.status_code}"
    lines: list[str] = []
    code = host.run(
        str(health["command"]),
        env,
        f"{host.root}/current",
        float(health.get("timeout_s", COMMAND_TIMEOUT_S)),
        lines.append,
    )
    for line in lines[-5:]:
        log(f"  {line}")
    return code == 0, f"command exit code {code}"


def warm_up(
    health: Mapping[str, Any],
    host: Host,
    env: Mapping[str, str],
    *,
    window_s: float,
    passes: int,
    interval_ms: int,
    log: LogLine,
    between_checks: Callable[[], None] | None = None,
    policy: outbound.Policy | None = None,
) -> tuple[bool, str]:
    """Check until ``passes`` checks in a row pass, or the window closes: (healthy, why).

    ``between_checks`` runs before each check; it may raise to stop the warm-up (the
    deployer stops when it has lost its lease).
    """
    if not health:
        log("no health check is configured: the release is taken as healthy")
        return True, "no health check configured"
    judge = WarmUp(passes=passes, window_s=window_s, started=time.monotonic())
    while True:
        if between_checks is not None:
            between_checks()
        healthy, seen = check_once(health, host, env, log, policy)
        judge.record(healthy, seen)
        log(f"health {judge.checks}: {'pass' if healthy else 'FAIL'} — {seen}")
        if judge.passed:
            return True, judge.verdict()
        now = time.monotonic()
        if judge.expired(now):
            return False, judge.verdict()
        # never sleep past the window: the verdict comes when the window closes
        time.sleep(max(0.0, min(interval_ms / 1000, judge.started + window_s - now)))
