"""Plain statements read and write exactly what the ORM would, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction

from obeya.core import rows
from obeya.core.models import Event, User
from obeya.pipelines.models import Runner

WHEN = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def _runner(name: str = "r1") -> Runner:
    return Runner.objects.create(
        name=name, token_hash=name * 8, prefix=name, labels=["linux", "x86"], created_at=WHEN
    )


@pytest.mark.django_db
def test_a_row_reads_back_as_the_orm_reads_it():
    made = _runner()
    (read,) = rows.select(Runner, "WHERE t.name = %s", ["r1"])
    assert read == made
    for field in Runner._meta.concrete_fields:
        assert getattr(read, field.attname) == getattr(made, field.attname), field.name
    assert read.created_at == WHEN and read.created_at.tzinfo is not None
    assert read.labels == ["linux", "x86"]
    assert read._state.adding is False


@pytest.mark.django_db
def test_an_update_writes_through_the_fields_and_counts_rows():
    made = _runner()
    changed = rows.update(
        Runner, {"labels": ["arm"], "last_seen_at": WHEN, "paused": True}, pk=made.pk, paused=False
    )
    assert changed == 1
    made.refresh_from_db()
    assert (made.labels, made.last_seen_at, made.paused) == (["arm"], WHEN, True)
    # The condition no longer holds: nothing changes.
    assert rows.update(Runner, {"labels": []}, pk=made.pk, paused=False) == 0


@pytest.mark.django_db
def test_save_writes_only_the_fields_named():
    made = _runner()
    made.labels, made.name = ["gpu"], "renamed"
    rows.save(made, ["labels"])
    made.refresh_from_db()
    assert (made.labels, made.name) == (["gpu"], "r1")


@pytest.mark.django_db
def test_insert_sets_the_key_and_a_foreign_key_goes_by_id():
    person = User.objects.create(username="pat")
    with transaction.atomic():
        event = Event(
            at=WHEN,
            actor=person,
            actor_name="pat",
            channel="api",
            kind="thing.done",
            subject="thing:1",
            data={"a": [1, 2], "b": None},
        )
        rows.insert(event)
    assert event.pk is not None
    stored = Event.objects.get(pk=event.pk)
    assert (stored.actor_id, stored.at, stored.data) == (person.pk, WHEN, {"a": [1, 2], "b": None})
    with pytest.raises(TypeError):
        stored.save()  # still append-only through the ORM


@pytest.mark.django_db
def test_the_lock_clause_matches_the_database():
    clause = rows.lock_clause("t")
    if connection.vendor == "postgresql":
        assert clause == " FOR UPDATE OF t"
        _runner()
        with transaction.atomic():
            assert len(rows.select(Runner, "WHERE t.name = %s", ["r1"], lock=True)) == 1
    else:
        assert clause == ""  # SQLite: an IMMEDIATE transaction holds the whole database
