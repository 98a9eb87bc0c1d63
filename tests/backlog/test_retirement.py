"""A service retires only through a finished end-of-life story with every item checked."""

from __future__ import annotations

import pytest

from obeya.backlog import services as backlog
from obeya.board import services as board
from obeya.catalog import services as catalog
from obeya.core.errors import Conflict
from tests.conftest import actor

PATH = ("marketing", "planning", "requirements", "development", "deployment", "operation")


@pytest.fixture
def old(alice):
    """Service "old" in operation; its board's Review column asks for nothing automatic
    (an end-of-life story has no scenarios for the default gate to check)."""
    service = catalog.create_service(actor(alice), "old", "Old")
    for stage in PATH:
        catalog.move_stage(actor(alice), "old", stage)
    board.configure_column(actor(alice), "old", "Review", gates=[])
    return service


def end_of_life(alice, **details):
    return backlog.create_story(
        actor(alice),
        "old",
        "end_of_life",
        "Retire Old",
        details={
            "reason": "replaced by New",
            "data_disposition": "archived to cold storage",
            "shutdown_order": "web, then workers, then the database",
            **details,
        },
    )


def to_done(alice, key):
    """Walk the card through every column, meeting each definition of done."""
    for column in board.columns_of("old")[1:]:
        card = board.card_of(backlog.get_story("old", key))
        for item in card.column.done_checklist:
            board.check_item(actor(alice), "old", key, item, True)
        board.move_card(actor(alice), "old", key, column.name)


def retire(alice):
    return catalog.move_stage(actor(alice), "old", "retired", reason="replaced")


def test_retiring_needs_an_end_of_life_story(alice, old):
    with pytest.raises(Conflict, match='"old" cannot retire: write an end-of-life story'):
        retire(alice)
    assert catalog.get_service("old").stage == "operation"


def test_retiring_waits_for_the_story_to_be_done_and_every_item_checked(alice, old):
    story = end_of_life(alice)
    with pytest.raises(Conflict, match="its end-of-life story is not done yet"):
        retire(alice)
    to_done(alice, story.key)
    assert backlog.get_story("old", story.key).done_at is not None
    with pytest.raises(Conflict, match="checklist has open items: Data archived or handed over"):
        retire(alice)
    items = story.details["checklist"]
    for index in range(len(items) - 1):
        backlog.check_end_of_life_item(actor(alice), "old", story.key, index, True)
    with pytest.raises(Conflict, match=f"open items: {items[-1]['text']}$"):
        retire(alice)
    backlog.check_end_of_life_item(actor(alice), "old", story.key, len(items) - 1, True)
    assert retire(alice).stage == "retired"


def test_a_done_story_must_still_say_what_happens_to_the_data(alice, old):
    story = end_of_life(alice, data_disposition="", checklist=[{"text": "x", "done": True}])
    to_done(alice, story.key)
    with pytest.raises(Conflict, match="does not say: data_disposition"):
        retire(alice)


def test_reopening_the_story_blocks_retirement_again(alice, old):
    story = end_of_life(alice, checklist=[{"text": "all handed over", "done": True}])
    to_done(alice, story.key)
    board.move_card(actor(alice), "old", story.key, "Review")
    with pytest.raises(Conflict, match="not done yet"):
        retire(alice)


def test_the_stage_options_show_why_retiring_is_blocked(alice, old):
    end_of_life(alice)
    [retired] = [
        o for o in catalog.stage_options(catalog.get_service("old")) if o.stage == "retired"
    ]
    assert retired.problem == '"old" cannot retire yet: its end-of-life story is not done yet'
