"""The audit trail is tamper-evident (issue #13, audit): the database refuses to delete an
event, each event carries the hash of the one before it, and a walk of the chain names
every changed, removed or unchained event. Tampering is done as an attacker holding the
database would: guards lifted, rows edited, guards put back."""

from __future__ import annotations

import itertools

import pytest
from django.db import DatabaseError, connection, transaction

from obeya.core import audit, chain, events, rows
from obeya.core.models import Event, User
from tests.conftest import SYSTEM, actor
from tests.event_log import guards_lifted


def record(user: User, count: int, kind: str = "thing.happened") -> list[Event]:
    with transaction.atomic():
        return [
            events.record(actor(user), kind, f"thing:{n}", {"n": n, "ratio": n / 4})
            for n in range(count)
        ]


def tamper(sql: str, params: list[object]) -> None:
    with guards_lifted(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def problems(**kwargs: object) -> list[tuple[int, str]]:
    report = audit.verify(SYSTEM, **kwargs)  # type: ignore[arg-type]
    return [(problem.event, problem.kind) for problem in report.problems]


# ---- the database's guards ---------------------------------------------------------------


def test_the_database_refuses_to_delete_an_event(alice: User) -> None:
    event = record(alice, 1)[0]
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM core_event WHERE id = %s", [event.pk])
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM core_event")
    if connection.vendor == "postgresql":
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # (TRUNCATE waits for no check)
            cursor.execute("TRUNCATE core_event CASCADE")
    assert Event.objects.filter(pk=event.pk).exists()


def test_every_guard_is_in_place_after_the_migrations(db: None) -> None:
    """A later migration that rebuilds core_event on SQLite drops its triggers: this says so."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'core_event'::regclass "
                "AND NOT tgisinternal AND tgenabled <> 'D'"
            )
            expected = {"core_event_append_only", "core_event_no_delete", "core_event_no_truncate"}
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'core_event'"
            )
            expected = {"core_event_append_only", "core_event_no_delete"}
        assert {name for (name,) in cursor.fetchall()} == expected


# ---- the chain ---------------------------------------------------------------------------


def test_each_event_is_chained_to_the_one_before_it(alice: User, bob: User) -> None:
    record(alice, 3)
    record(bob, 2, "other.thing")
    chained = list(Event.objects.order_by("id"))
    assert chained[0].prev_hash == chain.GENESIS
    for before, after in itertools.pairwise(chained):
        assert after.prev_hash == before.hash and len(after.hash) == 64
    report = audit.verify(SYSTEM)
    assert report.ok and report.events == len(chained) and report.head == chained[-1].hash
    assert report.summary() == (
        f"audit log intact: {len(chained)} events (#{chained[0].pk} to #{chained[-1].pk}), "
        f"head #{chained[-1].pk} {chained[-1].hash}"
    )


def test_data_the_json_column_reshapes_still_verifies(alice: User) -> None:
    """What is hashed at record() is what the column gives back: keys as strings, tuples as
    lists, a whole float as the database may write it (PostgreSQL's jsonb: 1e16 → 1 and 16
    zeros), and text beyond ASCII."""
    awkward = {3: "int key", "tuple": (1, 2), "big": 1e16, "half": 0.5, "text": "Zürich ✓"}
    with transaction.atomic():
        events.record(actor(alice), "thing.happened", "thing:awkward", awkward)
    assert audit.verify(SYSTEM).ok


def test_a_changed_event_is_named(alice: User) -> None:
    forged = record(alice, 4)[1]
    tamper("UPDATE core_event SET subject = %s WHERE id = %s", ["thing:forged", forged.pk])
    assert problems() == [(forged.pk, "changed")]


def test_a_removed_event_leaves_a_gap_that_is_named(alice: User) -> None:
    written = record(alice, 4)
    tamper("DELETE FROM core_event WHERE id = %s", [written[1].pk])
    report = audit.verify(SYSTEM)
    assert [(p.event, p.kind) for p in report.problems] == [(written[2].pk, "gap")]
    assert f"missing between #{written[0].pk} and #{written[2].pk}" in report.problems[0].message


def test_removing_the_start_of_the_log_is_found(alice: User) -> None:
    record(alice, 3)
    first, second = Event.objects.order_by("id")[:2]
    tamper("DELETE FROM core_event WHERE id = %s", [first.pk])
    report = audit.verify(SYSTEM)
    assert [(p.event, p.kind) for p in report.problems] == [(second.pk, "gap")]
    assert "the start of the log was removed" in report.problems[0].message


def test_a_forger_who_rehashes_a_row_breaks_the_link_after_it(alice: User) -> None:
    written = record(alice, 3)
    forged = Event.objects.get(pk=written[1].pk)
    forged.subject = "thing:forged"
    rehashed = chain.digest(events.content_of(forged), forged.prev_hash)
    tamper(
        "UPDATE core_event SET subject = %s, hash = %s WHERE id = %s",
        [forged.subject, rehashed, forged.pk],
    )
    assert problems() == [(written[2].pk, "link")]


def test_an_event_written_around_record_is_unchained(alice: User) -> None:
    record(alice, 2)
    with transaction.atomic():
        stray = Event(
            at=SYSTEM.now(), actor_name="x", channel="sql", kind="x.y", subject="x", data={}
        )
        rows.insert(stray)  # no hashes: what an INSERT around the event log writes
    assert problems() == [(stray.pk, "unchained"), (stray.pk, "link")]


def test_an_anchor_catches_events_removed_from_the_end(alice: User) -> None:
    record(alice, 3)
    noted = audit.verify(SYSTEM)
    assert audit.verify(SYSTEM, expect={noted.last: noted.head}).ok  # type: ignore[dict-item]
    tamper("DELETE FROM core_event WHERE id = %s", [noted.last])
    # the chain before it is whole: only the anchor knows the end is gone
    assert audit.verify(SYSTEM).ok
    assert problems(expect={noted.last: noted.head}) == [(noted.last, "anchor")]


def test_verifying_needs_an_administrator(alice: User, admin: User) -> None:
    from obeya.core.errors import PermissionDenied

    with pytest.raises(PermissionDenied, match="only an administrator"):
        audit.verify(actor(alice))
    assert audit.verify(actor(admin)).ok


# ---- over the API ------------------------------------------------------------------------


def test_the_api_route_is_for_administrators_and_names_the_broken_event(
    alice: User, admin: User, api_for
) -> None:
    written = record(alice, 3)
    path = "/audit/verify"
    assert api_for(alice).get(path).status_code == 403
    refused = api_for(admin).get(path)  # a write-scope token of an administrator
    assert refused.status_code == 403 and "admin scope" in refused.body["error"]["message"]
    root = api_for(admin, "admin")
    clean = root.get(path)
    assert clean.status_code == 200, clean.body
    assert clean.body["ok"] and clean.body["problems"] == [] and len(clean.body["head"]) == 64
    anchored = root.get(f"{path}?expect={clean.body['last']}:{clean.body['head']}")
    assert anchored.body["ok"]
    bad = root.get(f"{path}?expect=nonsense")
    assert bad.status_code == 400 and bad.body["error"]["field"] == "expect"

    tamper("UPDATE core_event SET kind = %s WHERE id = %s", ["thing.forged", written[0].pk])
    broken = root.get(path).body
    assert not broken["ok"] and broken["summary"].startswith("audit log BROKEN: 1 problem")
    assert broken["problems"] == [
        {
            "event": written[0].pk,
            "kind": "changed",
            "message": f"event #{written[0].pk} was changed after it was written: its content "
            "no longer matches its hash",
        }
    ]
    listed = root.get("/events?subject=thing:1&order=asc").body["items"][0]
    assert listed["hash"] == Event.objects.get(pk=written[1].pk).hash
    assert listed["prev_hash"] == Event.objects.get(pk=written[0].pk).hash
