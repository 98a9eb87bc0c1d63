"""The stored flow: folded as events are recorded, it always says what the log says."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from obeya.backlog import services as backlog
from obeya.board import flow, flow_queries, flow_store
from obeya.board import services as board
from obeya.board.models import BoardState, FlowDay, FlowStory
from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.models import Event

BASE = datetime(2026, 3, 1, tzinfo=UTC)
NAMES = ("Backlog", "Ready", "In progress", "Review", "Done", "Triage", "QA")
slugs = itertools.count(1)


def at(user, when: datetime) -> Actor:
    return Actor(user=user, channel="web", clock=ManualClock(when))


def open_board(user, slug: str, when: datetime) -> Service:
    """A service whose board has no WIP limits, checklists or gates: only time matters."""
    service = catalog.create_service(at(user, when), slug, slug.title())
    for column in board.ensure_columns(service):
        board.configure_column(
            at(user, when), slug, column.name, wip_limit=None, done_checklist=[], gates=[]
        )
    return service


def both_ways(slug: str, window: flow.Window) -> tuple[flow.FlowMetrics, flow.FlowMetrics]:
    """The metrics from the stored flow, and from a replay of the whole log."""
    service = catalog.get_service(slug)
    columns = flow_queries.board_columns(slug)
    stored = flow_store.stored_replay(service, columns, window)
    assert stored is not None, "the stored flow should answer for this window"
    logged = flow.replay(flow_store.story_events(slug, until=window.now), columns, window)
    return flow.metrics_of(stored, columns, window), flow.metrics_of(logged, columns, window)


# A history: each step happens some hours after the one before, sometimes before it (a
# clock set back, or two servers' clocks apart), so folds also meet events out of order.
steps = st.lists(
    st.tuples(
        st.integers(-6, 30),  # hours after the step before
        st.sampled_from(["create", "move", "move", "move", "rename"]),
        st.integers(0, 100),  # which story, or which column to rename
        st.integers(0, 100),  # which column to move to, or which new name
    ),
    min_size=1,
    max_size=14,
)


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=steps, days=st.integers(1, 20), later=st.integers(0, 48))
# A rename stamped before the events recorded ahead of it (the clock set back) folds in
# the order it was made: replayed by time, the first column ended under its old name.
@example(
    history=[(0, "create", 0, 0), (0, "rename", 0, 0), (-1, "rename", 0, 0), (0, "create", 0, 0)],
    days=1,
    later=0,
)
def test_the_stored_flow_matches_a_replay_of_the_log(history, days, later):
    with override_settings(TIME_ZONE="Asia/Kolkata"):  # +05:30: days do not start at UTC midnight
        user = core.create_user(
            Actor(user=None), f"owner{next(slugs)}", "pw", check_password_strength=False
        )
        slug = f"flow-{user.pk}"
        open_board(user, slug, BASE)
        when, stories = BASE, 0
        for gap, action, which, where in history:
            when += timedelta(hours=gap)
            columns = [c.name for c in board.columns_of(slug)]
            if action == "create" or stories == 0:
                backlog.create_story(at(user, when), slug, "user", f"story {stories + 1}")
                stories += 1
            elif action == "move":
                key = f"S-{which % stories + 1}"
                target = columns[where % len(columns)]
                if board.card_of(backlog.get_story(slug, key)).column.name != target:
                    board.move_card(at(user, when), slug, key, target)
            else:
                free = [name for name in NAMES if name not in columns]
                board.configure_column(
                    at(user, when),
                    slug,
                    columns[which % len(columns)],
                    rename=free[where % len(free)],
                )
        latest = max(e.at for e in Event.objects.filter(service=slug))
        window = flow.Window(days, latest + timedelta(hours=later), timezone.get_default_timezone())
        stored, logged = both_ways(slug, window)
        assert stored == logged


@pytest.fixture
def owner(alice, settings):
    settings.TIME_ZONE = "UTC"
    return alice


def test_a_renamed_column_keeps_its_history(owner):
    """Review is renamed QA on Mar 4: its cards of Mar 2 and 3 count under QA, and so does
    a card entering it by its new name."""
    open_board(owner, "pay", BASE)
    for number in (1, 2, 3):
        backlog.create_story(at(owner, BASE), "pay", "user", f"story {number}")
    board.move_card(at(owner, datetime(2026, 3, 2, 9, tzinfo=UTC)), "pay", "S-1", "Review")
    board.move_card(at(owner, datetime(2026, 3, 3, 9, tzinfo=UTC)), "pay", "S-2", "Review")
    rename = at(owner, datetime(2026, 3, 4, 9, tzinfo=UTC))
    board.configure_column(rename, "pay", "Review", rename="QA")
    board.move_card(at(owner, datetime(2026, 3, 5, 9, tzinfo=UTC)), "pay", "S-3", "QA")

    [renamed] = Event.objects.filter(kind="board.column_configured", data__rename="QA")
    assert renamed.data["renamed_from"] == "Review" and renamed.subject == "column:pay/QA"
    window = flow.Window(5, datetime(2026, 3, 5, 12, tzinfo=UTC))
    stored, logged = both_ways("pay", window)
    assert stored == logged
    assert [(day.day, wip["QA"]) for day, wip in stored.wip] == [
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 3),
    ]
    assert [c.name for c in stored.columns] == ["Backlog", "Ready", "In progress", "QA", "Done"]
    assert {card.key: card.column for card in stored.aging} == {
        "S-1": "QA",
        "S-2": "QA",
        "S-3": "QA",
    }


def test_a_name_freed_by_a_rename_can_go_to_another_column(owner):
    """Ready is renamed Triage, then Backlog (the first column) takes the name Ready: the
    cards created before stay with the first column, the card moved to the old Ready with
    Triage."""
    open_board(owner, "pay", BASE)
    for number in (1, 2):
        backlog.create_story(at(owner, BASE), "pay", "user", f"story {number}")
    board.move_card(at(owner, datetime(2026, 3, 2, 9, tzinfo=UTC)), "pay", "S-1", "Ready")
    board.configure_column(
        at(owner, datetime(2026, 3, 3, 9, tzinfo=UTC)), "pay", "Ready", rename="Triage"
    )
    board.configure_column(
        at(owner, datetime(2026, 3, 4, 9, tzinfo=UTC)), "pay", "Backlog", rename="Ready"
    )
    window = flow.Window(4, datetime(2026, 3, 4, 12, tzinfo=UTC))
    stored, logged = both_ways("pay", window)
    assert stored == logged
    assert [wip["Ready"] for _, wip in stored.wip] == [2, 1, 1, 1]  # the first column
    assert [wip["Triage"] for _, wip in stored.wip] == [0, 1, 1, 1]


def test_a_story_event_older_than_its_last_one_refolds_the_service(owner):
    open_board(owner, "pay", BASE)
    backlog.create_story(at(owner, BASE), "pay", "user", "story")
    board.move_card(at(owner, datetime(2026, 3, 5, tzinfo=UTC)), "pay", "S-1", "Done")
    board.move_card(at(owner, datetime(2026, 3, 3, tzinfo=UTC)), "pay", "S-1", "In progress")
    row = FlowStory.objects.get(key="S-1")
    # In time order it went to In progress on the 3rd and was done on the 5th.
    assert (row.column, row.done, row.started_at) == (
        "Done",
        True,
        datetime(2026, 3, 3, tzinfo=UTC),
    )
    stored, logged = both_ways("pay", flow.Window(5, datetime(2026, 3, 5, 12, tzinfo=UTC)))
    assert stored == logged


def test_a_past_now_or_another_time_zone_is_answered_from_the_log(owner, settings):
    open_board(owner, "pay", BASE)
    backlog.create_story(at(owner, datetime(2026, 3, 2, tzinfo=UTC)), "pay", "user", "story")
    service = Service.objects.get(slug="pay")
    columns = flow_queries.board_columns("pay")
    before = flow.Window(3, datetime(2026, 3, 1, 12, tzinfo=UTC))
    assert flow_store.stored_replay(service, columns, before) is None
    assert flow_queries.service_flow("pay", days=3, now=before.now).wip[-1][1]["Backlog"] == 0
    settings.TIME_ZONE = "Asia/Tokyo"
    tokyo = flow.Window(3, datetime(2026, 3, 3, tzinfo=UTC), timezone.get_default_timezone())
    assert flow_store.stored_replay(service, columns, tokyo) is None
    # The next fold refolds the days in the new time zone.
    backlog.create_story(at(owner, datetime(2026, 3, 3, tzinfo=UTC)), "pay", "user", "another")
    assert BoardState.objects.get(service=service).time_zone == "Asia/Tokyo"
    assert flow_store.stored_replay(service, columns, tokyo) is not None


def test_reading_the_flow_writes_nothing(owner, api_for, django_assert_max_num_queries):
    open_board(owner, "pay", BASE)
    backlog.create_story(at(owner, BASE), "pay", "user", "story")
    api = api_for(owner, "read")
    with django_assert_max_num_queries(12) as queries:
        assert api.get("/services/pay/flow?days=365").status_code == 200
    writes = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))
    ]
    assert writes == [] or all("core_apitoken" in sql for sql in writes)


# ---- the migration that fills the tables of an existing install ------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_folds_the_log_of_an_existing_install(owner):
    open_board(owner, "pay", BASE)
    for number in (1, 2):
        backlog.create_story(at(owner, BASE), "pay", "user", f"story {number}")
    board.move_card(at(owner, datetime(2026, 3, 2, 9, tzinfo=UTC)), "pay", "S-1", "In progress")
    board.move_card(at(owner, datetime(2026, 3, 3, 9, tzinfo=UTC)), "pay", "S-1", "Done")
    folded_live = {
        "stories": list(
            FlowStory.objects.order_by("key").values_list(
                "key", "column", "started_at", "done_at", "last_seq"
            )
        ),
        "days": list(FlowDay.objects.order_by("day").values_list("day", "counts")),
    }
    before = "0002_flow_tables"
    executor = MigrationExecutor(connection)
    executor.migrate([("board", before)])  # as if this install had not migrated yet
    # An install of before the stored flow has its events, and nothing folded.
    FlowStory.objects.all().delete()
    FlowDay.objects.all().delete()
    BoardState.objects.all().delete()

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert (
        list(
            FlowStory.objects.order_by("key").values_list(
                "key", "column", "started_at", "done_at", "last_seq"
            )
        )
        == folded_live["stories"]
    )
    assert list(FlowDay.objects.order_by("day").values_list("day", "counts")) == folded_live["days"]
    assert folded_live["days"][-1] == (
        date(2026, 3, 3),
        {"Backlog": 1, "In progress": 0, "Done": 1},
    )
    mark = BoardState.objects.get()
    assert (mark.time_zone, mark.latest_at) == ("UTC", datetime(2026, 3, 3, 9, tzinfo=UTC))
