"""A busy board read fast: columns show their first cards, pages and JSON are kept until
the board changes, and what is kept is the same as what would be built."""

from __future__ import annotations

import gzip
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from ninja.responses import NinjaJSONEncoder

from obeya.backlog import services as backlog
from obeya.board import api, reading
from obeya.board import services as board
from obeya.catalog import services as catalog
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from tests.conftest import PASSWORD, actor

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def pay(alice, bob, monkeypatch):
    """Six cards in Backlog and four done (S-7 first, S-10 last), columns showing three."""
    monkeypatch.setattr(reading, "CARDS_SHOWN", 3)
    catalog.create_service(actor(alice), "pay", "Pay")
    catalog.add_member(actor(alice), "pay", "bob", "developer")
    for column in ("Backlog", "Ready", "In progress", "Review", "Done"):
        board.configure_column(actor(alice), "pay", column, done_checklist=[], gates=[])
    for number in range(1, 11):
        backlog.create_story(actor(alice), "pay", "user", f"story {number}")
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    for number in range(7, 11):
        moment += timedelta(hours=1)
        clock = Actor(user=alice, channel="web", clock=ManualClock(moment))
        board.move_card(clock, "pay", f"S-{number}", "Done")
    return "pay"


def signed_in(who: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    assert client.login(username=who, password=PASSWORD)
    return client


def keys_in(html: str, column: str) -> list[str]:
    section = html[html.index(f'data-column="{column}"') :]
    section = section[: section.index("</ol>")]
    return re.findall(r'data-key="(S-\d+)"', section)[::2]  # the card and its move form


def test_a_long_column_shows_its_first_cards_and_a_done_column_its_latest(pay):
    html = signed_in("bob").get("/services/pay/board/").content.decode()
    assert keys_in(html, "Backlog") == ["S-1", "S-2", "S-3"]
    assert "The first 3 of 6 cards." in html and 'href="?all=1#column-1"' in html
    # The three most recently finished, in board order.
    assert keys_in(html, "Done") == ["S-8", "S-9", "S-10"]
    assert "The 3 most recently finished of 4 cards." in html
    assert "Backlog 6" in html and "Done 4" in html  # the counts are of every card

    everything = signed_in("bob").get("/services/pay/board/?all=1").content.decode()
    assert keys_in(everything, "Backlog") == [f"S-{n}" for n in range(1, 7)]
    assert keys_in(everything, "Done") == ["S-7", "S-8", "S-9", "S-10"]
    assert "Show only the first 3" in everything


def test_the_page_changes_with_the_board_and_each_visitor_gets_their_own_token(pay, alice):
    bob, alice_web = signed_in("bob"), signed_in("alice")
    first = bob.get("/services/pay/board/").content.decode()
    assert "story 1<" in first
    backlog.update_story(actor(alice), "pay", "S-1", title="Pay by card")
    board.move_card(actor(alice), "pay", "S-2", "Ready")
    again = bob.get("/services/pay/board/").content.decode()
    assert "Pay by card" in again and keys_in(again, "Ready") == ["S-2"]

    mine, theirs = (
        set(TOKEN.findall(again)),
        set(TOKEN.findall(alice_web.get("/services/pay/board/").content.decode())),
    )
    assert mine and theirs and not mine & theirs  # masked anew on each page
    # The token in the page is good for the page's own forms (CSRF is enforced here).
    moved = bob.post(
        "/services/pay/board/S-3/move/", {"column": "Ready", "csrfmiddlewaretoken": mine.pop()}
    )
    assert moved.status_code == 302
    assert keys_in(bob.get("/services/pay/board/").content.decode(), "Ready") == ["S-2", "S-3"]


def test_the_page_is_gzipped_for_browsers_that_take_it(pay):
    response = signed_in("bob").get("/services/pay/board/", HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    assert "S-10" in gzip.decompress(response.content).decode()


def test_the_json_changes_with_the_board_and_is_what_the_schema_would_write(pay, alice, api_for):
    reader = api_for(alice, "read")
    assert [c["key"] for c in reader.get("/services/pay/board").body["columns"][0]["cards"]] == [
        f"S-{n}" for n in range(1, 7)
    ]  # the API lists every card
    board.move_card(actor(alice), "pay", "S-1", "Ready")
    body = reader.get("/services/pay/board").body
    assert [c["key"] for c in body["columns"][1]["cards"]] == ["S-1"]
    validated = api.BoardOut.model_validate(api.board_body("pay")).model_dump()
    assert json.loads(json.dumps(validated, cls=NinjaJSONEncoder)) == body


def test_the_json_is_gzipped_for_clients_that_take_it(pay, alice, api_for):
    reader = api_for(alice, "read")
    plain = reader.get("/services/pay/board")
    packed = reader.client.get(
        "/api/services/pay/board",
        HTTP_AUTHORIZATION=f"Bearer {reader.token}",
        HTTP_ACCEPT_ENCODING="gzip, deflate",
    )
    assert packed["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed["Vary"]
    assert json.loads(gzip.decompress(packed.content)) == plain.body
    assert "Content-Encoding" not in plain


def test_an_unknown_board_is_404_on_the_page_and_the_api(pay, alice, api_for):
    assert signed_in("bob").get("/services/nope/board/").status_code == 404
    assert api_for(alice, "read").get("/services/nope/board").status_code == 404


def test_a_card_put_elsewhere_in_its_column_is_a_recorded_change(pay, alice, api_for):
    from obeya.core.models import Event

    reader = api_for(alice, "read")
    assert [c["key"] for c in reader.get("/services/pay/board").body["columns"][0]["cards"]][
        :2
    ] == [
        "S-1",
        "S-2",
    ]
    board.move_card(actor(alice), "pay", "S-1", "Backlog", position=5)
    [event] = Event.objects.filter(kind="story.positioned")
    assert event.data["position"] == 5 and event.data["column"] == "Backlog"
    cards = reader.get("/services/pay/board").body["columns"][0]["cards"]
    assert [c["key"] for c in cards][:2] == ["S-2", "S-3"]


def test_readers_asking_at_once_wait_for_one_build_of_a_version():
    built: list[int] = []

    def build(version: int) -> str:
        built.append(version)
        time.sleep(0.05)  # the others ask while this one builds
        return f"board at {version}"

    key = f"test-kept-{uuid.uuid4()}"
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: reading.kept_for_version(key, 7, lambda: build(7)), range(8))
        )
    assert answers == ["board at 7"] * 8
    assert built == [7]
    assert reading.kept_for_version(key, 8, lambda: build(8)) == "board at 8"
    assert reading.kept_for_version(key, 0, lambda: build(0)) == "board at 0"
    assert reading.kept_for_version(key, 0, lambda: build(0)) == "board at 0"
    assert built == [7, 8, 0, 0]  # a new version is built again; version 0 every time


def gzipped_page(client: Client, path: str = "/services/pay/board/") -> str:
    response = client.get(path, HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200 and response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    return gzip.decompress(response.content).decode()


def test_the_gzipped_page_is_the_page_with_the_readers_own_token_in_every_form(pay):
    bob = signed_in("bob")
    plain = bob.get("/services/pay/board/").content.decode()
    packed = gzipped_page(bob)
    for page in (plain, packed):
        [token] = set(TOKEN.findall(page))  # one token for the whole page
        assert f'"X-CSRFToken": "{token}"' in page
    assert TOKEN.sub("", plain) == TOKEN.sub("", packed).replace(
        set(TOKEN.findall(packed)).pop(), set(TOKEN.findall(plain)).pop()
    )
    # The token the gzipped page carries is good for its forms (CSRF is enforced here).
    [token] = set(TOKEN.findall(packed))
    moved = bob.post(
        "/services/pay/board/S-3/move/", {"column": "Ready", "csrfmiddlewaretoken": token}
    )
    assert moved.status_code == 302


def test_a_move_an_edit_and_a_renamed_service_show_on_the_next_page(pay, alice):
    bob = signed_in("bob")
    assert keys_in(gzipped_page(bob), "Ready") == []
    board.move_card(actor(alice), "pay", "S-2", "Ready")
    assert keys_in(gzipped_page(bob), "Ready") == ["S-2"]
    backlog.update_story(actor(alice), "pay", "S-2", title="Pay by card")
    assert "Pay by card<" in gzipped_page(bob)
    board.configure_column(actor(alice), "pay", "Ready", wip_limit=4)
    assert "Ready 1/4" in gzipped_page(bob)
    catalog.update_service(actor(alice), "pay", name="Payments")
    assert "Board · Payments" in gzipped_page(bob)


def test_readers_who_may_and_may_not_move_cards_never_get_each_others_board(pay, alice, make_user):
    make_user("carol")
    bob, carol = signed_in("bob"), signed_in("carol")
    for _ in range(2):  # each asking after the other has made their variant
        for page in (gzipped_page(bob), bob.get("/services/pay/board/").content.decode()):
            assert "Move to…" in page and "drag-handle" in page
        for page in (gzipped_page(carol), carol.get("/services/pay/board/").content.decode()):
            assert "Move to…" not in page and "drag-handle" not in page
            assert "Only members of the team move cards." in page
    # A role given is a board that moves at once; taken away, one that does not.
    catalog.add_member(actor(alice), "pay", "carol", "developer")
    assert "Move to…" in gzipped_page(carol)
    catalog.remove_member(actor(alice), "pay", "bob", "developer")
    assert "Move to…" not in gzipped_page(bob)


def test_each_reader_gets_their_own_page_around_the_board(pay, make_user):
    make_user("carol")
    bob, carol = signed_in("bob"), signed_in("carol")
    mine, theirs = gzipped_page(bob), gzipped_page(carol)
    assert ">bob</a>" in mine and ">carol</a>" not in mine
    assert ">carol</a>" in theirs and ">bob</a>" not in theirs
    assert not set(TOKEN.findall(mine)) & set(TOKEN.findall(theirs))
