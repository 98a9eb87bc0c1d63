"""Backlog pages: the ordered list, the new-story form that keeps what was typed on a
refusal, the story page by kind, reordering with a stale-rank refusal, the SLR sheet."""

from __future__ import annotations

import pytest
from django.test import Client

from obeya.backlog import services as backlog
from obeya.backlog.views import highlight_gherkin
from obeya.catalog import services as catalog
from obeya.core.models import Event
from tests.conftest import PASSWORD, actor

FEATURE = """\
Feature: Pay with a saved card
  # the happy path first
  @S-1 @smoke
  Scenario: A returning customer pays in one click
    Given a customer with a saved card
    When they pay 20 EUR
    Then the payment is accepted
    And a receipt is sent
"""


@pytest.fixture
def svc(alice, bob):
    service = catalog.create_service(actor(alice), "pay", "Pay")
    catalog.add_member(actor(alice), "pay", "bob", "developer")
    return service


def signed_in(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


@pytest.fixture
def web(svc) -> Client:
    return signed_in("alice")


def page(response) -> str:
    return response.content.decode()


def test_the_backlog_lists_stories_in_rank_order_with_their_state(alice, web):
    backlog.create_story(
        actor(alice),
        "pay",
        "user",
        "Pay by card",
        estimate=3,
        labels=["checkout"],
        assignees=["bob"],
    )
    backlog.create_story(actor(alice), "pay", "test", "Card tests", details={"gherkin": FEATURE})
    backlog.create_story(actor(alice), "pay", "user", "Refund")
    backlog.reorder(actor(alice), "pay", "S-3", after="S-1", expected_rank=3072)

    html = page(web.get("/services/pay/backlog/"))
    assert html.index('id="story-S-3"') < html.index('id="story-S-2"')
    assert "Pay by card" in html and "checkout" in html and "@bob" in html
    assert "not run" in html  # S-1 is covered by a scenario that has not run yet
    assert "INVEST" in html
    assert 'href="/services/pay/backlog/"' in html  # the service tab
    assert "drag-handle" in html  # alice is the service master


def test_kind_filter_search_and_label(alice, web):
    backlog.create_story(actor(alice), "pay", "user", "Pay by card", labels=["checkout"])
    backlog.create_story(
        actor(alice), "pay", "operation", "Stay up", details={"availability_target": 99.9}
    )
    only_ops = page(web.get("/services/pay/backlog/?kind=operation"))
    assert "Stay up" in only_ops and "Pay by card" not in only_ops
    found = page(web.get("/services/pay/backlog/?q=card"))
    assert "Pay by card" in found and "Stay up" not in found
    labelled = page(web.get("/services/pay/backlog/?label=checkout"))
    assert "Pay by card" in labelled and "Stay up" not in labelled
    bad = web.get("/services/pay/backlog/?kind=epic")
    assert bad.status_code == 200 and "unknown story kind" in page(bad)


def test_only_the_service_master_gets_drag_handles(alice, svc):
    backlog.create_story(actor(alice), "pay", "user", "Pay by card")
    html = page(signed_in("bob").get("/services/pay/backlog/"))
    assert "Pay by card" in html and "drag-handle" not in html
    assert 'id="new-story"' in html  # a developer still writes stories


def test_a_new_user_story_is_added_at_the_bottom(web):
    response = web.post(
        "/services/pay/backlog/new/",
        {
            "kind": "user",
            "title": "Pay by card",
            "estimate": "3",
            "labels": "a, b",
            "as_a": "shopper",
            "i_want": "to pay",
            "so_that": "I get my goods",
        },
        follow=True,
    )
    assert response.status_code == 200
    story = backlog.get_story("pay", "S-1")
    assert story.details["as_a"] == "shopper" and story.labels == ["a", "b"]
    assert story.estimate == 3
    assert "S-1 “Pay by card” added" in page(response)


def test_bad_gherkin_is_refused_with_line_and_column_and_every_value_is_kept(web):
    typed = "Feature: Pay\n  Scenario: one\n    Given a thing\n  Nonsense here\n"
    response = web.post(
        "/services/pay/backlog/new/",
        {
            "kind": "test",
            "title": "Card tests",
            "estimate": "2",
            "labels": "qa",
            "gherkin": typed,
            "as_a": "left from the user kind",
        },
    )
    assert response.status_code == 400
    html = page(response)
    assert "Gherkin: 4:" in html  # line:col of the bad line
    assert 'value="Card tests"' in html and 'value="qa"' in html
    assert "Nonsense here" in html
    assert 'value="left from the user kind"' in html
    assert 'name="kind" value="test" checked' in html
    assert 'aria-invalid="true"' in html


def test_a_bad_operation_number_is_refused_and_kept(web):
    response = web.post(
        "/services/pay/backlog/new/",
        {
            "kind": "operation",
            "title": "Stay up",
            "availability_target": "101",
            "latency_target_ms": "300",
            "backup_frequency": "nightly",
        },
    )
    assert response.status_code == 400
    html = page(response)
    assert "availability_target must be in (0, 100)" in html
    assert 'value="101"' in html and 'value="nightly"' in html and 'value="300"' in html


def test_end_of_life_and_change_request_forms(web):
    web.post(
        "/services/pay/backlog/new/",
        {
            "kind": "end_of_life",
            "title": "Retire Pay",
            "reason": "replaced",
            "shutdown_at": "2027-03-31",
            "checklist": "Data archived\nUsers told\n",
        },
    )
    eol = backlog.get_story("pay", "S-1")
    assert [i["text"] for i in eol.details["checklist"]] == ["Data archived", "Users told"]
    assert eol.details["shutdown_at"] == "2027-03-31"
    web.post(
        "/services/pay/backlog/new/",
        {
            "kind": "change_request",
            "title": "Fix rounding",
            "source": "incident",
            "reference": "INC-42",
        },
    )
    assert backlog.get_story("pay", "S-2").details == {"source": "incident", "reference": "INC-42"}


def test_a_person_outside_the_team_cannot_add_and_keeps_the_input(web, make_user):
    make_user("carol")
    response = signed_in("carol").post(
        "/services/pay/backlog/new/", {"kind": "user", "title": "Sneaky"}
    )
    assert response.status_code == 403
    assert "may not backlog.edit" in page(response)


def test_reorder_by_drag_answers_json_and_refuses_a_stale_rank(alice, web):
    for title in ("one", "two", "three"):
        backlog.create_story(actor(alice), "pay", "user", title)
    headers = {"HTTP_ACCEPT": "application/json"}
    moved = web.post(
        "/services/pay/backlog/reorder/",
        {"key": "S-3", "after": "S-1", "expected_rank": "3072"},
        **headers,
    )
    assert moved.status_code == 200 and moved.json() == {"ok": True}
    assert [s.key for s in backlog.list_stories("pay")] == ["S-1", "S-3", "S-2"]
    stale = web.post(
        "/services/pay/backlog/reorder/",
        {"key": "S-3", "after": "S-2", "expected_rank": "3072"},
        **headers,
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["message"].startswith("S-3 was moved by someone else")
    assert [s.key for s in backlog.list_stories("pay")] == ["S-1", "S-3", "S-2"]
    bad = web.post("/services/pay/backlog/reorder/", {"key": "S-3", "after": "S-1"}, **headers)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "expected_rank"


def test_a_story_moves_to_the_top(alice, web):
    backlog.create_story(actor(alice), "pay", "user", "one")
    backlog.create_story(actor(alice), "pay", "user", "two")
    web.post("/services/pay/backlog/reorder/", {"key": "S-2", "after": "", "expected_rank": "2048"})
    assert [s.key for s in backlog.list_stories("pay")] == ["S-2", "S-1"]


def test_reorder_without_javascript_and_only_by_the_service_master(alice, svc):
    for title in ("one", "two", "three"):
        backlog.create_story(actor(alice), "pay", "user", title)
    down = {"key": "S-1", "after": "S-2", "expected_rank": "1024"}
    refused = signed_in("bob").post("/services/pay/backlog/reorder/", down, follow=True)
    assert "may not backlog.order" in page(refused)
    moved = signed_in("alice").post("/services/pay/backlog/reorder/", down, follow=True)
    assert "Backlog order saved" in page(moved)
    assert [s.key for s in backlog.list_stories("pay")] == ["S-2", "S-1", "S-3"]


def test_the_story_page_shows_a_user_story_with_findings_tests_and_timeline(alice, web):
    backlog.create_story(
        actor(alice),
        "pay",
        "user",
        "Pay by card",
        details={"as_a": "shopper", "i_want": "to pay etc"},
    )
    backlog.create_story(actor(alice), "pay", "test", "Card tests", details={"gherkin": FEATURE})
    html = page(web.get("/services/pay/backlog/S-1/"))
    assert "shopper" in html and 'id="invest"' in html
    assert "no &quot;so that&quot;" in html and "no estimate yet" in html
    assert "S-2" in html and "Card tests" in html  # its linked test story
    assert "Board: Backlog" in html
    assert "alice</strong> wrote S-1 “Pay by card”" in html


def test_the_story_page_highlights_gherkin_and_lists_scenarios(alice, web):
    backlog.create_story(actor(alice), "pay", "user", "Pay by card")
    backlog.create_story(actor(alice), "pay", "test", "Card tests", details={"gherkin": FEATURE})
    html = page(web.get("/services/pay/backlog/S-2/"))
    assert '<span class="gk-keyword">Scenario:</span>' in html
    assert '<span class="gk-tag">@S-1</span>' in html
    assert "A returning customer pays in one click" in html and "not yet" in html


def test_gherkin_highlighting_escapes_the_text():
    html = highlight_gherkin("Feature: <b>x</b>\n  Given a <script>\n  # note\n  But not & this")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<span class="gk-keyword">Feature:</span> &lt;b&gt;' in html
    assert '<span class="gk-comment">  # note</span>' in html
    assert '<span class="gk-keyword">But</span> not &amp; this' in html


def test_editing_a_story_keeps_input_on_refusal(alice, web):
    backlog.create_story(actor(alice), "pay", "user", "Pay by card")
    response = web.post(
        "/services/pay/backlog/S-1/edit/",
        {"title": "Pay by card v2", "estimate": "lots", "as_a": "buyer"},
    )
    assert response.status_code == 400
    html = page(response)
    assert "estimate must be a whole number" in html
    assert 'value="Pay by card v2"' in html and 'value="lots"' in html and 'value="buyer"' in html
    saved = web.post(
        "/services/pay/backlog/S-1/edit/",
        {"title": "Pay by card v2", "estimate": "5", "as_a": "buyer", "assignees": "bob"},
        follow=True,
    )
    assert "S-1 saved" in page(saved)
    story = backlog.get_story("pay", "S-1")
    assert story.title == "Pay by card v2" and story.details["as_a"] == "buyer"
    assert [u.username for u in story.assignees.all()] == ["bob"]
    web.post(
        "/services/pay/backlog/S-1/edit/",
        {"title": "Pay by card v2", "estimate": "5", "as_a": "buyer", "assignees": "bob"},
    )
    changes = [e.data["changed"] for e in Event.objects.filter(kind="story.updated")]
    assert changes == [["estimate", "title", "details", "assignees"]]  # nothing new the 2nd time


def test_a_story_from_the_repository_is_edited_there(alice, web):
    backlog.create_story(actor(alice), "pay", "user", "Pay by card")
    backlog.create_story(
        actor(alice),
        "pay",
        "test",
        "Synced",
        details={"gherkin": FEATURE},
        source_file="features/pay.feature",
    )
    html = page(web.get("/services/pay/backlog/S-2/?edit=1"))
    assert 'edit <span class="mono">features/pay.feature</span> in the repository' in html
    assert "Save story" not in html
    response = web.post("/services/pay/backlog/S-2/edit/", {"title": "Mine"})
    assert response.status_code == 409
    assert "comes from features/pay.feature" in page(response)


def test_end_of_life_items_are_ticked_on_the_story_page(alice, web):
    backlog.create_story(actor(alice), "pay", "end_of_life", "Retire")
    web.post("/services/pay/backlog/S-1/checklist/", {"index": "1", "done": "1"})
    story = backlog.get_story("pay", "S-1")
    assert [i["done"] for i in story.details["checklist"]][:3] == [False, True, False]
    html = page(web.get("/services/pay/backlog/S-1/"))
    checklist = html[html.index('id="checklist"') : html.index('id="commits"')]
    assert checklist.count('type="checkbox"') == 6 and checklist.count(" checked") == 1
    # Editing the list keeps the tick of an item whose text stays.
    web.post(
        "/services/pay/backlog/S-1/edit/",
        {
            "title": "Retire",
            "checklist": "Documents moved to the archive\nA new item",
        },
    )
    items = backlog.get_story("pay", "S-1").details["checklist"]
    assert items == [
        {"text": "Documents moved to the archive", "done": True},
        {"text": "A new item", "done": False},
    ]
    bad = web.post("/services/pay/backlog/S-1/checklist/", {"index": "9", "done": "1"})
    assert bad.status_code == 400 and "has no checklist item 10" in page(bad)


def test_the_slr_sheet_lists_operation_stories(alice, web):
    backlog.create_story(
        actor(alice),
        "pay",
        "operation",
        "Stay up",
        details={
            "availability_target": 99.95,
            "latency_target_ms": 300,
            "rpo_minutes": 15,
            "rto_minutes": 60,
            "backup_frequency": "hourly",
        },
    )
    backlog.create_story(actor(alice), "pay", "user", "Not a service level")
    html = page(web.get("/services/pay/backlog/slr/"))
    assert "99.95 %" in html and "300 ms" in html and "15 min" in html and "hourly" in html
    assert "Not a service level" not in html


def test_missing_service_and_story_are_404(web):
    assert web.get("/services/ghost/backlog/").status_code == 404
    assert web.get("/services/pay/backlog/S-99/").status_code == 404
    assert web.get("/services/pay/backlog/nonsense/").status_code == 404


def test_story_events_read_as_sentences_on_the_overview(alice, web):
    backlog.create_story(actor(alice), "pay", "user", "Pay by card")
    assert Event.objects.filter(kind="story.created").exists()
    assert "wrote S-1 “Pay by card”" in page(web.get("/services/pay/"))


def test_pages_show_synced_scenario_results_with_their_runs(run_pipeline, alice):
    from tests.backlog.conftest import junit

    run = run_pipeline(
        junit(
            ("Greeting", "A visitor is greeted by name", "passed"),
            ("Greeting", "A stranger is greeted as the world", "failed"),
        )
    )
    web = signed_in("alice")
    user = page(web.get("/services/svc/backlog/S-1/"))
    assert f'href="/services/svc/runs/{run.number}/">#{run.number}</a>' in user
    assert "A stranger is greeted as the world broke" in user  # the failure message
    assert "accept-failed" in user and 'href="/services/svc/backlog/S-3/"' in user
    feature = page(web.get("/services/svc/backlog/S-3/"))
    assert "features/greeting.feature" in feature and "Save story" not in feature
    assert f"recorded the scenarios of S-3 in run #{run.number}: 1 passed, 1 failed" in feature
    assert "found S-3 “Feature: Greeting” in features/greeting.feature" in feature
    listing = page(web.get("/services/svc/backlog/"))
    assert listing.count("accept-failed") == 2  # S-1 and its test story S-3
