"""Schemathesis over the whole OpenAPI: no generated request gets a 500.

Each operation is its own test, in its own throwaway transaction, with a bounded number of
examples (positive and negative). It acts as an administrator, and the runner protocol as
a runner, so requests get past authentication to the code that reads what they carry; and
most of them name a service, environment, monitor and incident that exist, so they get
past the lookups too.

Schemathesis' coverage phase (every boundary value of every parameter, a few dozen
requests per operation) is left out to keep the run within its time bound; the boundary
values that used to give 500s have their own tests (tests/core/test_input_limits.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from obeya.catalog import services as catalog
from obeya.core import services as core
from obeya.deploy import services as deploy
from obeya.ops import reviews
from obeya.ops import services as ops
from obeya.pipelines import runners
from obeya.urls import api
from tests.conftest import SYSTEM, actor

EXAMPLES = 6
SEEDED = {"slug": "pay", "name": "main", "number": 1}
CONFIG = SchemathesisConfig.from_dict(
    {
        "phases": {"coverage": {"enabled": False}},
        "dictionaries": {key: {"values": [value]} for key, value in SEEDED.items()},
        "parameters": {f"path.{key}": {"dictionary": key, "probability": 0.7} for key in SEEDED},
    }
)
schema = schemathesis.openapi.from_dict(api.get_openapi_schema(), config=CONFIG)
schema.app = get_wsgi_application()
CLAIM = "/api/runner/jobs/claim"


@pytest.fixture
def tokens(admin: Any, tmp_path: Path) -> Iterator[dict[str, str]]:
    _, plaintext = core.create_token(SYSTEM, admin, name="fuzz", scope="admin", days=30)
    who = actor(admin)
    catalog.create_service(who, "pay", "Payments")
    deploy.create_environment(who, "pay", "main", target={"kind": "local", "root": str(tmp_path)})
    ops.create_monitor(who, "pay", "main", kind="http", url="http://127.0.0.1:9/")
    ops.open_incident(who, "pay", "Checkout is slow")
    reviews.open_problem(who, "pay", "Slow checkouts", [1])
    _, runner_token = runners.register_runner(SYSTEM, "fuzz", ["linux"])
    # As Django's test client does: requests must not close the test's connection, which
    # holds the test's transaction (the throwaway database all of this writes to).
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield {"admin": plaintext, "runner": runner_token}
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_gets_a_server_error(case: Any, tokens: dict[str, str]) -> None:
    who = "runner" if case.path.startswith("/api/runner/") else "admin"
    if case.path == CLAIM and isinstance(case.body, dict) and "wait" in case.body:
        case.body["wait"] = 0  # a long poll only waits: no need to wait for it here
    response = case.call(headers={"Authorization": f"Bearer {tokens[who]}"})
    case.validate_response(response, checks=[not_a_server_error])
