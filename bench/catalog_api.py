"""Latency of the busiest catalog reads over the real API stack (in-process WSGI).

500 services with teams and history; measures GET /api/services (a page of 100),
GET /api/services/{slug} and GET /api/events (a page of 100), with a Bearer token.
"""

from __future__ import annotations

import time

import httpx
from django.conf import settings

from bench.database import migrated
from bench.timing import summary_ms
from obeya.catalog import services as catalog
from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.wsgi import application

SERVICES = 500
REQUESTS = 300


def _seed() -> str:
    system = Actor(user=None, channel="system")
    owner = core.create_user(system, "bench", "bench password 123", check_password_strength=False)
    me = Actor(user=owner, channel="system")
    for index in range(SERVICES):
        slug = f"svc-{index:04d}"
        catalog.create_service(me, slug, f"Service {index}", owner_team="Bench")
        catalog.move_stage(me, slug, "marketing")
    _, token = core.create_token(system, owner, name="bench", scope="read", days=1)
    return token


def _measure(client: httpx.Client, path: str) -> dict[str, float]:
    durations = []
    for _ in range(REQUESTS):
        begin = time.perf_counter()
        response = client.get(path)
        durations.append(time.perf_counter() - begin)
        response.raise_for_status()
    return summary_ms(durations)


def run() -> dict[str, object]:
    vendor = migrated()
    token = _seed()
    host = settings.ALLOWED_HOSTS[0]
    with httpx.Client(
        transport=httpx.WSGITransport(app=application),
        base_url=f"http://{host}",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        return {
            "database": vendor,
            "services": SERVICES,
            "GET /api/services?limit=100": _measure(client, "/api/services?limit=100"),
            "GET /api/services/{slug}": _measure(client, "/api/services/svc-0250"),
            "GET /api/events?limit=100": _measure(client, "/api/events?limit=100"),
        }
