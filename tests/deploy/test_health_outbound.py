"""Health-check URLs go through the outbound allow-list (RELIABILITY C3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from obeya.deploy import health
from obeya.deploy.targets import LocalHost


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/"]
)
def test_a_health_check_never_fetches_cloud_metadata(tmp_path: Path, url: str) -> None:
    lines: list[str] = []
    healthy, seen = health.check_once(
        {"kind": "http", "url": url}, LocalHost(str(tmp_path)), {}, lines.append
    )
    assert not healthy
    assert "link-local" in seen


def test_the_environments_own_health_host_is_allowed(settings) -> None:
    settings.OBEYA_OUTBOUND_ALLOW = []
    policy = health.policy_for("http://app.internal.example:8080/health")
    assert "app.internal.example" in policy.hosts
    assert not policy.loopback
