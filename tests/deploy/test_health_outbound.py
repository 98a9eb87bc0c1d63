"""Health-check URLs go through the outbound allow-list (RELIABILITY C3)."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from obeya.deploy import health, reach
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


def _environment(target: dict[str, Any], url: str, approved: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        target=target, health={"kind": "http", "url": url}, approved_origins=approved
    )


@pytest.fixture
def served() -> Iterator[int]:
    """A release answering /health on a loopback port."""
    with ThreadingHTTPServer(("127.0.0.1", 0), _Ok) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield int(server.server_address[1])
        server.shutdown()


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_health_check_reaches_its_approved_port_and_no_other(tmp_path: Path, served: int) -> None:
    local = {"kind": "local", "root": str(tmp_path)}
    url = f"http://127.0.0.1:{served}/health"
    approved = reach.policy_for([_environment(local, url, [f"http://127.0.0.1:{served}"])])
    host, lines = LocalHost(str(tmp_path)), []
    assert health.check_once({"kind": "http", "url": url}, host, {}, lines.append, approved)[0]
    for other in (f"http://127.0.0.1:{served + 1}/health", f"http://localhost:{served}/health"):
        healthy, seen = health.check_once(
            {"kind": "http", "url": other}, host, {}, lines.append, approved
        )
        assert not healthy and "not on the allow-list" in seen
    unapproved = reach.policy_for([_environment(local, url, [])])
    healthy, seen = health.check_once(
        {"kind": "http", "url": url}, host, {}, lines.append, unapproved
    )
    assert not healthy and "not on the allow-list" in seen


def test_an_environments_own_host_is_admitted_on_its_port_at_public_addresses_only() -> None:
    """Naming an internal host in a health URL opens neither the host nor its other ports."""
    ssh = {"kind": "ssh", "root": "/srv/app", "hosts": ["app.internal.example:22"]}
    named = "http://app.internal.example:8080"
    policy = reach.policy_for([_environment(ssh, "http://{host}:8080/health", [named])])
    public, private = ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.5")
    assert policy.admits("app.internal.example", public, scheme="http", port=8080)
    assert not policy.admits("app.internal.example", private, scheme="http", port=8080)
    assert not policy.admits("app.internal.example", public, scheme="http", port=8081)
    assert not policy.admits(
        "app.internal.example", ipaddress.ip_address("127.0.0.1"), scheme="http", port=8080
    )
