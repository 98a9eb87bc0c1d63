"""The backlog over HTTP: stories of every kind, order, checklists, the SLR sheet, refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from obeya.backlog import services as backlog
from obeya.backlog.models import ScenarioResult, Story
from obeya.catalog import services as catalog
from obeya.core.models import Event

FEATURE = """@S-1
Feature: Pay by card
  Scenario: A valid card is charged
    Given a basket of 10 EUR
    When I pay with a valid card
    Then the order is paid
"""


@pytest.fixture
def api(alice, api_for):
    api = api_for(alice)
    assert api.post("/services", {"slug": "pay", "name": "Pay"}).status_code == 201
    return api


def user_story(api, title="Pay by card", **fields):
    body = {"kind": "user", "title": title, **fields}
    response = api.post("/services/pay/stories", body)
    assert response.status_code == 201, response.body
    return response.body


def unchanged(before: tuple[int, int]) -> bool:
    return (Story.objects.count(), Event.objects.filter(kind__startswith="story.").count()) == (
        before
    )


def counts() -> tuple[int, int]:
    return Story.objects.count(), Event.objects.filter(kind__startswith="story.").count()


def test_a_user_story_in_full(api):
    created = user_story(
        api,
        description="Most customers pay by card.",
        estimate=3,
        labels=["payments", "q3"],
        assignees=["alice"],
        details={"as_a": "shopper", "i_want": "to pay by card", "so_that": "I get my order"},
    )
    assert created["key"] == "S-1" and created["kind"] == "user"
    assert created["service"] == "pay" and created["column"] == "Backlog"
    assert created["details"]["as_a"] == "shopper"
    assert created["labels"] == ["payments", "q3"] and created["assignees"] == ["alice"]
    assert created["card"]["column"] == "Backlog" and created["card"]["key"] == "S-1"
    assert created["acceptance"] == {"state": "none", "scenarios": 0, "passed": 0, "tests": []}
    assert [f["letter"] for f in created["findings"]] == ["T"]
    assert created["commits"] == [] and created["scenario_results"] == []
    shown = api.get("/services/pay/stories/S-1")
    assert shown.status_code == 200 and shown.body["rank"] == created["rank"]


def test_invest_findings_name_what_is_missing(api):
    found = user_story(api, "Handle everything etc.", estimate=13)["findings"]
    reasons = " | ".join(f"{f['letter']} {f['reason']}" for f in found)
    assert 'V no "so that"' in reasons and "E vague words" in reasons
    assert "S estimate 13 is above 8" in reasons


def test_test_story_links_by_tag_and_feeds_acceptance(api):
    user_story(api)
    test = api.post(
        "/services/pay/stories",
        {"kind": "test", "title": "Card payments", "details": {"gherkin": FEATURE}},
    )
    assert test.status_code == 201, test.body
    assert test.body["details"]["keys"] == [1]
    assert test.body["details"]["scenarios"] == ["A valid card is charged"]
    story = api.get("/services/pay/stories/S-1").body
    assert story["acceptance"]["tests"] == ["S-2"]
    assert story["acceptance"]["state"] == "not_run"
    assert "T" not in [f["letter"] for f in story["findings"]]
    # A default-branch run reported the scenario (written by the pipeline sync).
    ScenarioResult.objects.create(
        story=Story.objects.get(number=2),
        scenario="A valid card is charged",
        run_number=7,
        sha="a" * 40,
        status="passed",
        recorded_at=datetime(2026, 1, 5, tzinfo=UTC),
    )
    story = api.get("/services/pay/stories/S-1").body
    assert story["acceptance"]["state"] == "passed"
    assert story["scenario_results"][0]["story"] == "S-2"
    assert story["scenario_results"][0]["status"] == "passed"


def test_malformed_gherkin_is_a_400_with_line_and_column(api):
    before = counts()
    bad = "Feature: Pay\n  Scenario: one\n    Given a basket\n  Oops no keyword\n"
    response = api.post(
        "/services/pay/stories",
        {"kind": "test", "title": "Broken", "details": {"gherkin": bad}},
    )
    assert response.status_code == 400
    assert response.body["error"]["field"] == "gherkin"
    assert response.body["error"]["message"].startswith("Gherkin: 4:")
    assert unchanged(before)


def test_a_tag_naming_a_missing_story_is_refused(api):
    before = counts()
    response = api.post(
        "/services/pay/stories",
        {"kind": "test", "title": "Orphan", "details": {"gherkin": FEATURE.replace("S-1", "S-9")}},
    )
    assert response.status_code == 400
    assert response.body["error"] == {
        "code": "invalid",
        "message": 'tag @S-9 names no story of "pay"',
        "field": "gherkin",
    }
    assert unchanged(before)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "epic", "title": "x"}, "kind", "unknown story kind 'epic'"),
        ({"kind": "user", "title": " "}, "title", "1-200 characters"),
        ({"kind": "user"}, "title", "Field required"),
        ({"kind": "user", "title": "x", "estimate": 5000}, "estimate", "0 to 1000"),
        ({"kind": "user", "title": "x", "details": {"gherkin": "x"}}, "gherkin", "no field"),
        ({"kind": "user", "title": "x", "assignees": ["ghost"]}, "assignees", "ghost"),
        ({"kind": "user", "title": "x", "as_a": "shopper"}, "as_a", "Extra inputs"),
        (
            {"kind": "change_request", "title": "x", "details": {"source": "whim"}},
            "source",
            "must be one of maintenance",
        ),
        (
            {"kind": "operation", "title": "x", "details": {"availability_target": 100}},
            "availability_target",
            "(0, 100)",
        ),
    ],
)
def test_bad_stories_are_refused_and_nothing_is_saved(api, body, field, message):
    before = counts()
    response = api.post("/services/pay/stories", body)
    assert response.status_code in (400, 404), response.body
    assert response.body["error"]["field"] == field
    assert message in response.body["error"]["message"]
    assert unchanged(before)


def test_list_filters_and_pages(api):
    user_story(api, "Pay by card", labels=["payments"])
    user_story(api, "Refund an order", description="money back")
    api.post(
        "/services/pay/stories",
        {"kind": "operation", "title": "Stay up", "details": {"availability_target": 99.9}},
    )
    page = api.get("/services/pay/stories?limit=2").body
    assert page["count"] == 3 and [s["key"] for s in page["items"]] == ["S-1", "S-2"]
    assert page["items"][0]["column"] == "Backlog"
    assert [s["key"] for s in api.get("/services/pay/stories?kind=operation").body["items"]] == [
        "S-3"
    ]
    assert [s["key"] for s in api.get("/services/pay/stories?label=payments").body["items"]] == [
        "S-1"
    ]
    assert [s["key"] for s in api.get("/services/pay/stories?search=money").body["items"]] == [
        "S-2"
    ]
    bad = api.get("/services/pay/stories?kind=epic")
    assert bad.status_code == 400 and bad.body["error"]["field"] == "kind"
    assert api.get("/services/ghost/stories").status_code == 404


def test_edit_changes_only_what_is_sent(api):
    user_story(api, details={"as_a": "shopper", "i_want": "to pay"})
    edited = api.patch(
        "/services/pay/stories/S-1",
        {"estimate": 2, "labels": ["payments"], "details": {"so_that": "I get my order"}},
    )
    assert edited.status_code == 200, edited.body
    assert edited.body["estimate"] == 2 and edited.body["labels"] == ["payments"]
    assert edited.body["details"]["as_a"] == "shopper"
    assert edited.body["details"]["so_that"] == "I get my order"
    assert Event.objects.filter(kind="story.updated").count() == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"kind": "test"}, 400, "kind"),
        ({"title": ""}, 400, "title"),
        ({"estimate": -1}, 400, "estimate"),
        ({"details": {"rpo_minutes": 5}}, 400, "rpo_minutes"),
        ({"assignees": ["ghost"]}, 404, "assignees"),
    ],
)
def test_bad_edits_change_nothing(api, body, status, field):
    user_story(api, estimate=3)
    before = counts()
    response = api.patch("/services/pay/stories/S-1", body)
    assert response.status_code == status, response.body
    assert response.body["error"]["field"] == field
    assert unchanged(before)
    assert api.get("/services/pay/stories/S-1").body["estimate"] == 3


def test_missing_and_malformed_keys(api):
    missing = api.get("/services/pay/stories/S-9")
    assert missing.status_code == 404 and missing.body["error"]["message"] == (
        'no story S-9 in "pay"'
    )
    malformed = api.get("/services/pay/stories/12")
    assert (
        malformed.status_code == 400
        and "keys look like S-12" in (malformed.body["error"]["message"])
    )


def keys_in_order(api):
    return [s["key"] for s in api.get("/services/pay/stories").body["items"]]


def test_reorder_with_the_rank_you_saw(api):
    for title in ("a", "b", "c"):
        user_story(api, title)
    seen = api.get("/services/pay/stories/S-3").body["rank"]
    moved = api.post("/services/pay/stories/S-3/rank", {"after": "S-1", "expected_rank": seen})
    assert moved.status_code == 200, moved.body
    assert keys_in_order(api) == ["S-1", "S-3", "S-2"]

    stale = api.post("/services/pay/stories/S-3/rank", {"after": "S-2", "expected_rank": seen})
    assert stale.status_code == 409
    assert stale.body["error"]["code"] == "conflict"
    assert stale.body["error"]["field"] == "expected_rank"
    assert "moved by someone else" in stale.body["error"]["message"]
    assert keys_in_order(api) == ["S-1", "S-3", "S-2"]

    fresh = moved.body["rank"]
    ghost = api.post("/services/pay/stories/S-3/rank", {"after": "S-9", "expected_rank": fresh})
    assert ghost.status_code == 404 and ghost.body["error"]["field"] == "key"
    assert api.post("/services/pay/stories/S-3/rank", {"expected_rank": fresh}).status_code == 400
    last = api.post("/services/pay/stories/S-3/rank", {"after": "S-2", "expected_rank": fresh})
    assert last.status_code == 200
    assert keys_in_order(api) == ["S-1", "S-2", "S-3"]


def test_reorder_to_the_top(api):
    for title in ("a", "b", "c"):
        user_story(api, title)
    seen = api.get("/services/pay/stories/S-3").body["rank"]
    moved = api.post("/services/pay/stories/S-3/rank", {"after": None, "expected_rank": seen})
    assert moved.status_code == 200, moved.body
    assert keys_in_order(api) == ["S-3", "S-1", "S-2"]


def test_only_the_service_master_orders_the_backlog(api, bob, api_for):
    user_story(api, "a")
    user_story(api, "b")
    api.post("/services/pay/members", {"username": "bob", "role": "developer"})
    rank = api.get("/services/pay/stories/S-2").body["rank"]
    refused = api_for(bob).post(
        "/services/pay/stories/S-2/rank", {"after": None, "expected_rank": rank}
    )
    assert refused.status_code == 403 and "service_master" in refused.body["error"]["message"]
    assert (
        api_for(bob).post("/services/pay/stories", {"kind": "user", "title": "mine"}).status_code
        == 201
    )


def test_slr_sheet_lists_operation_stories(api):
    user_story(api)
    api.post(
        "/services/pay/stories",
        {
            "kind": "operation",
            "title": "Payments stay up",
            "details": {
                "availability_target": "99.95",
                "latency_target_ms": 300,
                "rpo_minutes": 5,
                "rto_minutes": 30,
                "backup_frequency": "hourly",
            },
        },
    )
    sheet = api.get("/services/pay/slr")
    assert sheet.status_code == 200
    assert sheet.body == [
        {
            "key": "S-2",
            "title": "Payments stay up",
            "availability_target": 99.95,
            "latency_target_ms": 300,
            "rpo_minutes": 5,
            "rto_minutes": 30,
            "backup_frequency": "hourly",
            "continuity_conditions": "",
            "done": False,
        }
    ]


def test_end_of_life_checklist_and_retirement(api):
    created = api.post(
        "/services/pay/stories",
        {
            "kind": "end_of_life",
            "title": "Retire Pay",
            "details": {"reason": "Replaced by Checkout", "shutdown_order": "web, then db"},
        },
    ).body
    items = [item["text"] for item in created["details"]["checklist"]]
    assert len(items) == 6 and all(not i["done"] for i in created["details"]["checklist"])
    ticked = api.post(
        "/services/pay/stories/S-1/checks",
        {"checklist": "end_of_life", "item": items[0], "checked": True},
    )
    assert ticked.status_code == 200, ticked.body
    assert ticked.body["details"]["checklist"][0]["done"] is True
    wrong = api.post(
        "/services/pay/stories/S-1/checks", {"checklist": "end_of_life", "item": "Party"}
    )
    assert wrong.status_code == 400 and wrong.body["error"]["field"] == "item"
    user_story(api)
    not_eol = api.post(
        "/services/pay/stories/S-2/checks", {"checklist": "end_of_life", "item": items[0]}
    )
    assert (
        not_eol.status_code == 400
        and "not an end-of-life story" in (not_eol.body["error"]["message"])
    )
    unknown = api.post("/services/pay/stories/S-1/checks", {"checklist": "todo", "item": "x"})
    assert unknown.status_code == 400 and unknown.body["error"]["field"] == "checklist"
    problem = catalog.retirement_problem(catalog.get_service("pay"))
    assert problem is not None and "not done yet" in problem


def test_commits_naming_the_key_show_on_the_story(api):
    user_story(api)
    backlog.record_commits(
        catalog.get_service("pay"),
        [
            {
                "sha": "b" * 40,
                "message": "S-1: charge the card",
                "author": "Alice",
                "committed_at": datetime(2026, 1, 5, tzinfo=UTC),
            }
        ],
        run_number=3,
        branch="main",
    )
    commits = api.get("/services/pay/stories/S-1").body["commits"]
    assert [(c["sha"][:4], c["run_number"], c["branch"]) for c in commits] == [("bbbb", 3, "main")]


def test_read_tokens_read_but_do_not_write(alice, api, api_for):
    user_story(api)
    reader = api_for(alice, "read")
    assert reader.get("/services/pay/stories").status_code == 200
    assert reader.get("/services/pay/stories/S-1").status_code == 200
    assert reader.get("/services/pay/slr").status_code == 200
    refused = reader.post("/services/pay/stories", {"kind": "user", "title": "x"})
    assert refused.status_code == 403 and "read scope" in refused.body["error"]["message"]


def test_routes_are_in_the_openapi_description(api):
    paths = api.get("/openapi.json").body["paths"]
    for path in (
        "/api/services/{slug}/stories",
        "/api/services/{slug}/stories/{key}",
        "/api/services/{slug}/stories/{key}/rank",
        "/api/services/{slug}/stories/{key}/checks",
        "/api/services/{slug}/slr",
    ):
        assert path in paths
