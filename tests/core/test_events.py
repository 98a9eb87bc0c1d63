"""The event log: one way in, inside the change's transaction, append-only."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from obeya.catalog import services as catalog
from obeya.core import events, services
from obeya.core.models import Event
from tests.conftest import PASSWORD, actor


@pytest.mark.django_db(transaction=True)
def test_record_refuses_to_run_outside_a_transaction(alice):
    with pytest.raises(RuntimeError, match="outside a transaction"):
        events.record(actor(alice), "thing.happened", "x:1")


def test_kinds_are_dotted_nouns(alice):
    with pytest.raises(ValueError, match="dotted"), transaction.atomic():
        events.record(actor(alice), "Happened", "x:1")


def test_events_cannot_be_changed_or_deleted(alice):
    with transaction.atomic():
        event = events.record(actor(alice), "thing.happened", "x:1", {"a": 1})
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        Event.objects.filter(pk=event.pk).update(kind="other.thing")


def test_the_database_itself_refuses_updates(alice):
    with transaction.atomic():
        event = events.record(actor(alice), "thing.happened", "x:1")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE core_event SET kind = 'x.y' WHERE id = %s", [event.pk])
    event.refresh_from_db()
    assert event.kind == "thing.happened"


def _count(kind: str) -> int:
    return Event.objects.filter(kind=kind).count()


def test_each_audited_action_writes_exactly_one_event(alice, bob, client):
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert _count("user.logged_in") == 1
    logged_in = Event.objects.get(kind="user.logged_in")
    assert logged_in.actor == alice and logged_in.ip == "127.0.0.1"

    token, _ = services.create_token(actor(alice), alice, name="x")
    assert _count("token.created") == 1
    services.revoke_token(actor(alice), token.pk)
    assert _count("token.revoked") == 1

    catalog.create_service(actor(alice), "svc", "Svc")
    catalog.add_member(actor(alice), "svc", "bob", "developer")
    assert _count("member.added") == 2  # alice as service_master on create, then bob
    catalog.remove_member(actor(alice), "svc", "bob", "developer")
    assert _count("member.removed") == 1
    catalog.move_stage(actor(alice), "svc", "marketing")
    assert _count("service.stage_changed") == 1


def test_failed_login_is_recorded_without_the_password(alice, client):
    client.post("/login/", {"username": "alice", "password": "wrong-password-123"})
    failed = Event.objects.get(kind="user.login_failed")
    assert failed.data == {"username": "alice"}
    assert "wrong-password-123" not in str(failed.data)


def test_events_api_filters_and_paginates(alice, api_for):
    catalog.create_service(actor(alice), "one", "One")
    catalog.create_service(actor(alice), "two", "Two")
    api = api_for(alice)
    page = api.get("/events?service=one&limit=1").body
    assert page["count"] == 2  # service.created + member.added
    assert len(page["items"]) == 1
    assert page["items"][0]["kind"] == "member.added"  # newest first
    oldest = api.get("/events?service=one&order=asc&limit=1").body["items"][0]
    assert oldest["kind"] == "service.created"
    assert oldest["actor"] == "alice"
    kinds = {e["kind"] for e in api.get("/events?kind=service.").body["items"]}
    assert kinds == {"service.created"}


def test_bulk_delete_is_refused_and_actors_cannot_be_deleted(alice):
    from django.db.models import ProtectedError

    with transaction.atomic():
        events.record(actor(alice), "thing.happened", "x:1")
    with pytest.raises(TypeError):
        Event.objects.all().delete()
    with pytest.raises(ProtectedError):
        alice.delete()
