"""Monitors: claimed once per tick, cut at their timeout, opening and noting incidents."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection

from obeya.catalog import services as catalog
from obeya.core.actors import Actor, system_actor
from obeya.core.errors import InvalidInput
from obeya.deploy import services as deploy
from obeya.ops import scheduler
from obeya.ops import services as ops
from obeya.ops.models import Monitor
from tests.conftest import actor

ADMIN_CLI = Actor(user=None, channel="cli")


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def owner(make_user):
    user = make_user("rita")
    catalog.create_service(actor(user), "shop", "Shop")
    catalog.add_member(actor(user), "shop", "rita", "reliability_engineer")
    return user


@pytest.fixture
def app(owner, tmp_path) -> Iterator[tuple[str, type[_Health]]]:
    """The shop's release on a loopback port, declared as its local environment "live"
    (its health URL approved by the local admin CLI): what the shop's monitors may check."""
    handler = type("Handler", (_Health,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health"
    deploy.create_environment(
        ADMIN_CLI,
        "shop",
        "live",
        target={"kind": "local", "root": str(tmp_path / "live")},
        health={"kind": "http", "url": url},
    )
    yield url, handler
    server.shutdown()
    server.server_close()


def _tick() -> list[str]:
    claimed = scheduler.claim_due(system_actor())
    for monitor, due in claimed:
        scheduler.run_check(monitor, due)
    return [monitor.name for monitor, _ in claimed]


def _due_now(name: str) -> None:
    Monitor.objects.filter(name=name).update(next_due_at=system_actor().now())


def test_three_failures_in_a_row_open_one_incident_and_recovery_only_notes_it(owner, app):
    url, handler = app
    ops.create_monitor(actor(owner), "shop", "web", kind="http", url=url, failure_threshold=3)
    assert _tick() == ["web"]
    handler.status = 500
    for _ in range(4):
        _due_now("web")
        _tick()
    incidents = list(ops.list_incidents("shop"))
    assert len(incidents) == 1
    assert incidents[0].source == "monitor" and "HTTP 500" in incidents[0].title
    handler.status = 200
    _due_now("web")
    _tick()
    incident = ops.get_incident("shop", 1)
    assert incident.status == "open"  # a recovery never closes it by itself
    assert "incident.monitor_recovered" in [e.kind for e in ops.timeline(incident)]


@pytest.mark.django_db(transaction=True)
def test_a_due_check_is_claimed_by_one_of_two_schedulers(owner, app):
    url, _ = app
    for number in range(20):
        ops.create_monitor(actor(owner), "shop", f"m{number}", kind="http", url=url)

    def claim(_: int) -> list:
        try:
            return scheduler.claim_due(system_actor())
        finally:
            connection.close()  # this thread's own connection

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(claim, range(2))
    names = [m.name for m, _ in first] + [m.name for m, _ in second]
    assert sorted(names) == sorted(f"m{n}" for n in range(20))


@pytest.mark.django_db(transaction=True)
def test_a_hanging_check_is_cut_at_its_timeout_and_does_not_hold_up_another(owner, app):
    url, _ = app
    ops.create_monitor(
        actor(owner),
        "shop",
        "hangs",
        kind="command",
        command="sleep 30",
        timeout_s=0.5,
        interval_s=10,
    )
    ops.create_monitor(actor(owner), "shop", "quick", kind="http", url=url)
    claimed = scheduler.claim_due(system_actor())
    done: dict[str, float] = {}
    started = time.monotonic()

    def run(item):
        try:
            scheduler._pooled(*item)  # as the scheduler's pool runs it
        finally:
            connection.close()  # this short-lived thread's own connection
        done[item[0].name] = time.monotonic() - started

    threads = [threading.Thread(target=run, args=(item,)) for item in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert done["quick"] < done["hangs"]
    hung = Monitor.objects.get(name="hangs")
    assert hung.last_ok is False and "no answer within 0.5 s" in hung.last_detail


def test_a_monitor_reaches_only_the_ports_the_services_environments_declare(owner, app):
    """No loopback port is open to a monitor but an approved environment's own: not the
    database's, not another port of the same host."""
    url, _ = app
    declared_port = int(url.split(":")[2].split("/")[0])
    with ThreadingHTTPServer(("127.0.0.1", 0), _Health) as undeclared:
        threading.Thread(target=undeclared.serve_forever, daemon=True).start()
        other = f"http://127.0.0.1:{undeclared.server_address[1]}/health"
        ops.create_monitor(actor(owner), "shop", "declared", kind="http", url=url)
        ops.create_monitor(actor(owner), "shop", "other-port", kind="http", url=other)
        ops.create_monitor(actor(owner), "shop", "db", kind="http", url="http://127.0.0.1:5432/")
        ops.create_monitor(
            actor(owner), "shop", "by-name", kind="http", url=f"http://localhost:{declared_port}/"
        )
        _tick()
        undeclared.shutdown()
    assert Monitor.objects.get(name="declared").last_ok is True
    for name in ("other-port", "db", "by-name"):
        monitor = Monitor.objects.get(name=name)
        assert monitor.last_ok is False, name
        assert "not on the allow-list" in monitor.last_detail, monitor.last_detail
        assert "OBEYA_OUTBOUND_ALLOW" in monitor.last_detail


def test_another_services_environment_opens_nothing_to_this_ones_monitors(owner, app, make_user):
    url, _ = app
    mallory = make_user("mallory")
    catalog.create_service(actor(mallory), "other", "Other")
    ops.create_monitor(actor(mallory), "other", "peek", kind="http", url=url)
    _tick()
    assert Monitor.objects.get(name="peek").last_ok is False


def test_a_refused_address_is_a_failed_check_that_says_why(owner, settings):
    settings.OBEYA_OUTBOUND_ALLOW = []
    ops.create_monitor(actor(owner), "shop", "meta", kind="http", url="http://169.254.169.254/")
    _tick()
    monitor = Monitor.objects.get(name="meta")
    assert monitor.last_ok is False and "link-local" in monitor.last_detail


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "ping"}, "kind"),
        ({"kind": "http", "url": "ftp://x"}, "url"),
        ({"kind": "http", "url": "http://x", "interval_s": 1}, "interval_s"),
        ({"kind": "http", "url": "http://x", "timeout_s": 0}, "timeout_s"),
        ({"kind": "command", "command": " "}, "command"),
    ],
)
def test_bad_monitor_settings_are_refused(owner, fields, field):
    with pytest.raises(InvalidInput) as refused:
        ops.create_monitor(actor(owner), "shop", "x", **fields)
    assert refused.value.field == field
    assert not Monitor.objects.exists()


def test_next_due_keeps_each_monitors_phase_and_skips_missed_ticks():
    from datetime import timedelta

    now = system_actor().now()
    for monitor_id in (1, 2, 77):
        first = scheduler.next_due(monitor_id, 10, now)
        assert now < first <= now + timedelta(seconds=10)
        # a check that ran late keeps the monitor's phase and skips what it missed
        late = first + timedelta(seconds=25)
        assert scheduler.next_due(monitor_id, 10, late) == first + timedelta(seconds=30)


def test_monitors_made_together_spread_over_their_interval():
    from obeya.ops import logic

    phases = sorted(logic.phase(monitor_id, 10) for monitor_id in range(1, 501))
    assert phases[0] < 0.5 and phases[-1] > 9.5
    buckets = [sum(1 for p in phases if second <= p < second + 1) for second in range(10)]
    assert min(buckets) >= 35  # 50 a second when even; none crowded out


def test_a_tick_reads_each_services_allow_list_once_for_all_its_checks(owner, app, monkeypatch):
    url, _ = app
    for number in range(3):
        ops.create_monitor(actor(owner), "shop", f"m{number}", kind="http", url=url)
    reads = []
    read = ops.outbound_policy
    monkeypatch.setattr(
        ops, "outbound_policy", lambda service: reads.append(service) or read(service)
    )
    claimed = scheduler.claim_due(system_actor())
    policies = scheduler.allow_lists(claimed)
    for monitor, due in claimed:
        scheduler.run_check(monitor, due, policy=policies.get(monitor.service_id))
    assert len(reads) == 1
    assert all(m.last_ok for m in Monitor.objects.all())
