"""The board page: columns with WIP and FULL, cards with their checklist, moves by drag
(JSON) and by form (no JavaScript), with WIP overrides and gate refusals shown on the card."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from obeya.backlog import services as backlog
from obeya.board import services as board
from obeya.catalog import services as catalog
from tests.conftest import PASSWORD, actor

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def svc(alice, bob):
    service = catalog.create_service(actor(alice), "pay", "Pay")
    catalog.add_member(actor(alice), "pay", "bob", "developer")
    board.configure_column(actor(alice), "pay", "In progress", wip_limit=1)
    return service


@pytest.fixture
def web(svc) -> Client:
    client = Client()
    assert client.login(username="bob", password=PASSWORD)
    return client


def story(alice, title: str, **fields):
    return backlog.create_story(actor(alice), "pay", "user", title, **fields)


def into_progress(alice, key: str, **kw) -> None:
    board.move_card(actor(alice), "pay", key, "Ready")
    for item in ("Acceptance criteria agreed", "Estimated"):
        board.check_item(actor(alice), "pay", key, item, True)
    board.move_card(actor(alice), "pay", key, "In progress", **kw)


def page(response) -> str:
    return response.content.decode()


def card_html(html: str, key: str) -> str:
    """The markup of one card, up to the next card or the end of its column."""
    rest = html[html.index(f'id="card-{key}"') :]
    ends = [i for i in (rest.find('<li class="board-card', 1), rest.find("</ol>")) if i > 0]
    return rest[: min(ends)]


def test_the_board_shows_columns_wip_full_and_cards(alice, web):
    story(alice, "Pay by card", assignees=["bob"])
    story(alice, "Refunds")
    into_progress(alice, "S-1")
    html = page(web.get("/services/pay/board/"))
    for name in ("Backlog", "Ready", "In progress", "Review", "Done"):
        assert f'data-column="{name}"' in html
    assert '<span class="wip"' in html and ">1/1</span>" in html
    assert 'class="full-marker">FULL</span>' in html
    assert "Pay by card" in html and "@bob" in html and "Refunds" in html
    assert "Code reviewed" in html  # the checklist of the card's column
    assert 'href="/services/pay/board/" class="active"' in html


def test_a_drag_into_a_full_column_answers_409_then_moves_with_a_reason(alice, web):
    story(alice, "one")
    story(alice, "two")
    into_progress(alice, "S-1")
    board.move_card(actor(alice), "pay", "S-2", "Ready")
    for item in ("Acceptance criteria agreed", "Estimated"):
        board.check_item(actor(alice), "pay", "S-2", item, True)
    url = "/services/pay/board/S-2/move/"
    full = web.post(url, {"column": "In progress", "position": "0"}, **JSON)
    assert full.status_code == 409
    assert full.json()["error"]["code"] == "wip_limit"
    assert 'WIP limit reached in "In progress" (1/1)' in full.json()["error"]["message"]
    blank = web.post(url, {"column": "In progress", "override_reason": "  "}, **JSON)
    assert blank.status_code == 400 and "needs a reason" in blank.json()["error"]["message"]
    moved = web.post(url, {"column": "In progress", "override_reason": "hotfix"}, **JSON)
    assert moved.status_code == 200 and moved.json()["column"] == "In progress"
    assert "WIP override: hotfix — bob" in page(web.get("/services/pay/board/"))


def test_without_javascript_a_full_column_asks_for_the_reason_on_the_card(alice, web):
    story(alice, "one")
    story(alice, "two")
    into_progress(alice, "S-1")
    board.move_card(actor(alice), "pay", "S-2", "Ready")
    for item in ("Acceptance criteria agreed", "Estimated"):
        board.check_item(actor(alice), "pay", "S-2", item, True)
    refused = web.post("/services/pay/board/S-2/move/", {"column": "In progress"})
    assert refused.status_code == 409
    html = page(refused)
    card = card_html(html, "S-2")
    assert "WIP limit reached in" in card
    assert 'name="override_reason"' in card and "Override and move to In progress" in card
    blank = web.post(
        "/services/pay/board/S-2/move/", {"column": "In progress", "override_reason": ""}
    )
    assert blank.status_code == 400 and "needs a reason" in page(blank)
    moved = web.post(
        "/services/pay/board/S-2/move/",
        {"column": "In progress", "override_reason": "hotfix"},
        follow=True,
    )
    assert "S-2 is in “In progress”" in page(moved)
    assert board.card_of(backlog.get_story("pay", "S-2")).column.name == "In progress"


def test_a_gate_refusal_is_shown_on_the_card(alice, web):
    story(alice, "one")
    into_progress(alice, "S-1")
    board.check_item(actor(alice), "pay", "S-1", "Code reviewed", True)
    board.move_card(actor(alice), "pay", "S-1", "Review")
    as_json = web.post("/services/pay/board/S-1/move/", {"column": "Done"}, **JSON)
    assert as_json.status_code == 409 and as_json.json()["error"]["code"] == "gate_failed"
    refused = web.post("/services/pay/board/S-1/move/", {"column": "Done"})
    assert refused.status_code == 409
    html = page(refused)
    card = card_html(html, "S-1")
    assert "Demonstrated to the service master" in card
    assert "no scenario covers this story yet" in card
    assert 'class="board-card kind-edge-user refused"' in html


def test_ticking_a_checklist_item_on_a_card(alice, web):
    story(alice, "one")
    board.move_card(actor(alice), "pay", "S-1", "Ready")
    response = web.post(
        "/services/pay/board/S-1/check/", {"item": "Estimated", "checked": "1"}, follow=True
    )
    assert response.status_code == 200
    assert board.card_of(backlog.get_story("pay", "S-1")).checked == ["Estimated"]
    web.post("/services/pay/board/S-1/check/", {"item": "Estimated"})
    assert board.card_of(backlog.get_story("pay", "S-1")).checked == []
    bad = web.post("/services/pay/board/S-1/check/", {"item": "Nonsense", "checked": "1"})
    assert bad.status_code == 400 and "has no checklist item" in page(bad)


def test_someone_outside_the_team_sees_the_board_but_cannot_move(alice, svc, make_user):
    story(alice, "one")
    make_user("carol")
    client = Client()
    client.login(username="carol", password=PASSWORD)
    html = page(client.get("/services/pay/board/"))
    assert "one" in html and "drag-handle" not in html and "Move to…" not in html
    refused = client.post("/services/pay/board/S-1/move/", {"column": "Ready"}, **JSON)
    assert refused.status_code == 403


def test_unknown_column_and_missing_board(alice, web):
    story(alice, "one")
    bad = web.post("/services/pay/board/S-1/move/", {"column": "Nowhere"}, **JSON)
    assert bad.status_code == 400 and "is not a column" in bad.json()["error"]["message"]
    assert web.get("/services/ghost/board/").status_code == 404


def test_the_flow_charts_show_only_when_their_template_exists(alice, web, monkeypatch):
    from obeya.board import views

    monkeypatch.setattr(views, "FLOW_CHARTS", "board/no_such_template.html")
    assert not views._flow_charts_ready()
    html = page(web.get("/services/pay/board/"))
    assert "data-flow-charts" not in html


def test_a_change_shows_on_the_card_it_changed_and_the_others_stay_as_they_were(alice, web):
    # Cards are rendered once and kept by what they show (board.views): what changed must
    # show, on the changed card only.
    story(alice, "Pay by card")
    story(alice, "Refunds")
    before = page(web.get("/services/pay/board/"))
    backlog.update_story(actor(alice), "pay", "S-1", title="Pay by card, 3-D Secure")
    board.move_card(actor(alice), "pay", "S-1", "Ready")
    board.check_item(actor(alice), "pay", "S-1", "Estimated", True)
    after = page(web.get("/services/pay/board/"))
    card = card_html(after, "S-1")
    assert "Pay by card, 3-D Secure" in card
    assert 'aria-label="Definition of done of Ready"' in card
    assert 'value="Estimated" checked' not in card and 'value="1" checked' in card
    assert without_tokens(card_html(after, "S-2")) == without_tokens(card_html(before, "S-2"))
    # The request's own CSRF token is in every form, kept cards or not.
    assert len(set(CSRF_VALUE.findall(after))) == 1
    assert CSRF_VALUE.findall(after)[0] in card_html(after, "S-2")


CSRF_VALUE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def without_tokens(html: str) -> str:
    return CSRF_VALUE.sub("", html)
