"""API tokens: hashed, scoped, expiring, revocable; read tokens cannot change anything."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from obeya.core import services
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.errors import Conflict, InvalidInput, PermissionDenied
from obeya.core.models import ApiToken, Event
from tests.conftest import SYSTEM, Api, actor


def test_only_the_hash_is_stored(alice):
    token, plaintext = services.create_token(actor(alice), alice, name="laptop", days=30)
    assert plaintext.startswith("obeya_") and len(plaintext) > 40
    assert token.token_hash == services.hash_token(plaintext)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM core_apitoken")
        rows = cursor.fetchall()
    assert plaintext not in repr(rows)
    assert plaintext not in json.dumps(list(Event.objects.values("data")))


@pytest.mark.parametrize("days", [0, -1, 366, 10_000])
def test_lifetime_is_mandatory_and_bounded(alice, days):
    with pytest.raises(InvalidInput, match="1 to 365 days"):
        services.create_token(actor(alice), alice, name="x", days=days)
    assert not ApiToken.objects.exists()


def test_unknown_scope_is_refused(alice):
    with pytest.raises(InvalidInput, match="read, write or admin"):
        services.create_token(actor(alice), alice, name="x", scope="root")


def test_admin_scope_needs_an_administrator(alice, admin):
    with pytest.raises(PermissionDenied, match="not an administrator"):
        services.create_token(actor(admin), alice, name="x", scope="admin")
    token, _ = services.create_token(actor(admin), admin, name="x", scope="admin")
    assert token.scope == "admin"


def test_a_user_cannot_mint_tokens_for_someone_else(alice, bob):
    with pytest.raises(PermissionDenied):
        services.create_token(actor(alice), bob, name="x")


def test_a_token_cannot_create_a_wider_token(alice, api_for):
    api = api_for(alice, "write")
    response = api.post("/tokens", {"name": "wider", "scope": "admin", "days": 5})
    assert response.status_code == 403
    assert response.body["error"]["code"] == "forbidden"


def test_expired_token_gets_401(alice):
    clock = ManualClock(timezone.now() - timedelta(days=40))
    _, plaintext = services.create_token(Actor(user=alice, clock=clock), alice, name="old", days=30)
    response = Api(plaintext).get("/me")
    assert response.status_code == 401
    assert "expired" in response.body["error"]["message"]


def test_revoked_token_gets_401_and_revoking_twice_conflicts(alice):
    token, plaintext = services.create_token(actor(alice), alice, name="x")
    assert Api(plaintext).get("/me").status_code == 200
    services.revoke_token(actor(alice), token.pk)
    response = Api(plaintext).get("/me")
    assert response.status_code == 401
    assert "revoked" in response.body["error"]["message"]
    with pytest.raises(Conflict):
        services.revoke_token(actor(alice), token.pk)


def test_unknown_token_and_no_credentials_get_401(db):
    assert Api("obeya_nope").get("/services").status_code == 401
    response = Api(None).get("/services")
    assert response.status_code == 401
    assert response.body["error"]["code"] == "unauthenticated"


def test_only_the_owner_or_an_admin_revokes(alice, bob, admin):
    token, _ = services.create_token(actor(alice), alice, name="x")
    with pytest.raises(PermissionDenied):
        services.revoke_token(actor(bob), token.pk)
    services.revoke_token(actor(admin), token.pk)


def _mutating_operations(api: Api) -> list[tuple[str, str]]:
    schema = api.get("/openapi.json").body
    operations = []
    for path, methods in schema["paths"].items():
        for method in methods:
            # The runner protocol takes runner tokens only; a user token is refused (401).
            if (
                method.upper() not in {"GET", "HEAD", "OPTIONS"}
                and "/runner/" not in path
                and "/hooks/" not in path
            ):
                concrete = re.sub(r"\{[^}]+\}", "x1", path.removeprefix("/api"))
                operations.append((method.upper(), concrete))
    return operations


def test_read_token_gets_403_on_every_mutating_route(alice, api_for):
    api = api_for(alice, "read")
    operations = _mutating_operations(api)
    assert len(operations) >= 6, operations
    for method, path in operations:
        response = api.call(method, path, {})
        assert response.status_code == 403, (method, path, response.body)
        assert "read scope" in response.body["error"]["message"]


def test_user_tokens_cannot_speak_the_runner_protocol(alice, api_for):
    api = api_for(alice, "admin" if alice.is_superuser else "write")
    response = api.post("/runner/jobs/claim", {"wait": 0})
    assert response.status_code == 401


def test_read_token_can_read(alice, api_for):
    api = api_for(alice, "read")
    assert api.get("/services").status_code == 200
    assert api.get("/events").status_code == 200


def test_tokens_never_reach_the_logs(alice, api_for, caplog):
    caplog.set_level(logging.DEBUG)
    api = api_for(alice)
    api.get("/me")
    api.post("/services", {"slug": "bad slug", "name": "x"})
    api.get("/services/missing")
    created = api.post("/tokens", {"name": "second", "days": 3})
    assert created.status_code == 201
    for secret in (api.token, created.body["token"]):
        assert secret not in caplog.text
        assert secret not in json.dumps(list(Event.objects.values("data", "subject")))


def test_token_api_round_trip(alice, api_for):
    api = api_for(alice)
    created = api.post("/tokens", {"name": "ci", "scope": "read", "days": 7})
    assert created.status_code == 201
    assert created.body["token"].startswith("obeya_")
    listed = api.get("/tokens").body
    assert {t["name"] for t in listed["items"]} == {"test", "ci"}
    revoked = api.delete(f"/tokens/{created.body['id']}")
    assert revoked.status_code == 200 and revoked.body["revoked_at"]
    assert Api(created.body["token"]).get("/me").status_code == 401


def test_system_actor_mints_for_anyone(alice):
    token, _ = services.create_token(SYSTEM, alice, name="cli")
    assert token.user == alice
