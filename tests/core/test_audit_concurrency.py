"""The chain stays one chain when events are written at the same time, each writer on its
own connection (issue #13, audit): no two events may chain to the same predecessor."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import pytest
from django.db import connection, transaction

from obeya.core import audit, events
from obeya.core.models import Event, User
from tests.conftest import SYSTEM, actor

WAIT_S = 30  # a generous bound for one thread to reach a point: never a measured time


def in_thread(errors: list[BaseException], work: Callable[[], None]) -> threading.Thread:
    """``work`` on its own thread, hence its own database connection, closed after."""

    def run() -> None:
        try:
            work()
        except BaseException as error:  # reported by the test, not lost with the thread
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_many_writers_at_once_make_one_chain(alice: User) -> None:
    writers, each = 4, 12
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(number: int) -> None:
        start.wait(WAIT_S)
        for n in range(each):
            with transaction.atomic():
                events.record(actor(alice), "writer.wrote", f"writer:{number}", {"n": n})
                events.record(actor(alice), "writer.wrote_again", f"writer:{number}", {"n": n})

    threads = [in_thread(errors, functools.partial(write, n)) for n in range(writers)]
    for thread in threads:
        thread.join(WAIT_S * 4)
    assert not errors, errors
    assert Event.objects.filter(kind__startswith="writer.").count() == writers * each * 2
    report = audit.verify(SYSTEM)
    assert report.ok, [problem.message for problem in report.problems]
    hashes = list(Event.objects.values_list("prev_hash", flat=True))
    assert len(hashes) == len(set(hashes))  # no predecessor was taken twice


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL row-level writers")
def test_a_second_writer_waits_until_the_first_commits(alice: User) -> None:
    """On PostgreSQL both transactions run at once: the second must not read the head
    before the first one's event is committed. (SQLite lets one writer in at a time.)"""
    first_recorded, release_first, second_done = (threading.Event() for _ in range(3))
    errors: list[BaseException] = []

    def first() -> None:
        with transaction.atomic():
            events.record(actor(alice), "race.first", "race:1")
            first_recorded.set()
            assert release_first.wait(WAIT_S)

    def second() -> None:
        assert first_recorded.wait(WAIT_S)
        with transaction.atomic():
            events.record(actor(alice), "race.second", "race:2")
        second_done.set()

    threads = [in_thread(errors, first), in_thread(errors, second)]
    try:
        # Let the first commit only once the second is queued behind it (or, without a
        # lock, has already chained its event to the first one's predecessor).
        assert first_recorded.wait(WAIT_S)
        while not second_done.is_set() and not _someone_waits_for_the_chain():
            second_done.wait(0.02)
    finally:
        release_first.set()
        for thread in threads:
            thread.join(WAIT_S)
    assert not errors, errors
    one, two = Event.objects.get(kind="race.first"), Event.objects.get(kind="race.second")
    assert two.pk > one.pk and two.prev_hash == one.hash
    assert audit.verify(SYSTEM).ok


def _someone_waits_for_the_chain() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND objid::bigint = %s",
            [events.CHAIN_LOCK & 0xFFFFFFFF],
        )
        return bool(cursor.fetchone()[0])
