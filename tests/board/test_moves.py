"""Card moves: WIP limits enforced (with recorded overrides), gates, one winner per slot."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from obeya.backlog import services as backlog
from obeya.board import services as board
from obeya.board.models import Card
from obeya.catalog import services as catalog
from obeya.core.errors import Conflict, InvalidInput
from obeya.core.models import Event
from tests.conftest import actor


@pytest.fixture
def svc(alice):
    service = catalog.create_service(actor(alice), "pay", "Pay")
    board.configure_column(actor(alice), "pay", "In progress", wip_limit=2)
    return service


def story(alice, title="Pay by card", **fields):
    return backlog.create_story(actor(alice), "pay", "user", title, **fields)


def test_new_stories_start_in_the_first_column(alice, svc):
    s = story(alice)
    assert s.key == "S-1"
    columns = board.board("pay")["columns"]
    assert [c["column"].name for c in columns] == [
        "Backlog",
        "Ready",
        "In progress",
        "Review",
        "Done",
    ]
    assert [card.story.key for card in columns[0]["cards"]] == ["S-1"]


def test_a_full_column_refuses_unless_a_reason_is_given(alice, svc):
    for n in range(3):
        story(alice, f"story {n}")
    board.move_card(actor(alice), "pay", "S-1", "In progress")
    board.move_card(actor(alice), "pay", "S-2", "In progress")
    with pytest.raises(board.WipLimitReached, match=r'"In progress" \(2/2\)'):
        board.move_card(actor(alice), "pay", "S-3", "In progress")
    with pytest.raises(InvalidInput, match="needs a reason"):
        board.move_card(actor(alice), "pay", "S-3", "In progress", override_reason="  ")
    card = board.move_card(
        actor(alice), "pay", "S-3", "In progress", override_reason="production fix, cannot wait"
    )
    assert card.override_reason == "production fix, cannot wait" and card.override_by == "alice"
    moved = Event.objects.filter(kind="story.moved").last()
    assert moved.data["wip"] == "3/2"
    assert moved.data["override_reason"] == "production fix, cannot wait"


def test_the_definition_of_done_guards_leaving_a_column(alice, svc):
    story(alice)
    board.move_card(actor(alice), "pay", "S-1", "Ready")
    with pytest.raises(board.GateFailed, match="Acceptance criteria agreed"):
        board.move_card(actor(alice), "pay", "S-1", "In progress")
    board.check_item(actor(alice), "pay", "S-1", "Acceptance criteria agreed", True)
    board.check_item(actor(alice), "pay", "S-1", "Estimated", True)
    board.move_card(actor(alice), "pay", "S-1", "In progress")
    board.move_card(actor(alice), "pay", "S-1", "Ready")  # going back is always allowed


def test_review_needs_passing_scenarios(alice, svc):
    story(alice)
    board.move_card(actor(alice), "pay", "S-1", "Review")
    with pytest.raises(board.GateFailed, match="no scenario covers this story"):
        board.move_card(actor(alice), "pay", "S-1", "Done")


def test_unknown_and_foreign_columns(alice, svc):
    catalog.create_service(actor(alice), "other", "Other")
    board.columns_of("other")
    board.configure_column(actor(alice), "other", "Review", rename="QA")
    story(alice)
    with pytest.raises(InvalidInput, match="another service's board"):
        board.move_card(actor(alice), "pay", "S-1", "QA")
    with pytest.raises(InvalidInput, match="use one of"):
        board.move_card(actor(alice), "pay", "S-1", "Nowhere")


@pytest.mark.django_db(transaction=True)
def test_two_people_racing_for_the_last_slot_one_wins(alice):
    catalog.create_service(actor(alice), "pay", "Pay")
    board.configure_column(actor(alice), "pay", "In progress", wip_limit=1)
    story(alice, "a")
    story(alice, "b")
    board.board("pay")
    results: list[str] = []
    barrier = threading.Barrier(2)

    def move(key: str) -> None:
        try:
            barrier.wait(5)
            board.move_card(actor(alice), "pay", key, "In progress")
            results.append("moved")
        except Conflict:
            results.append("refused")
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=move, args=(key,)) for key in ("S-1", "S-2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["moved", "refused"]
    assert Card.objects.filter(column__name="In progress").count() == 1
