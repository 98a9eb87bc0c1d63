"""The backlog and the board in a real browser: cards dragged under WIP limits and gates,
and the backlog reordered by drag, with a stale order refused and reloaded."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.browsing import Server, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

FEATURE = """\
Feature: Pay by card
  @S-1
  Scenario: A card payment is accepted
    Given a shopper with a valid card
    When they pay 20 EUR
    Then the payment is accepted
"""


def api(page: Page, server: Server, method: str, path: str, body: Any = None) -> Any:
    """Call the JSON API as the signed-in person (session cookie plus CSRF token)."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.fetch(
        f"{server.url}/api{path}", method=method, data=body, headers={"X-CSRFToken": token}
    )
    assert response.ok, f"{method} {path}: {response.status} {response.text()}"
    return response.json()


def service_with_stories(page: Page, server: Server, slug: str, *stories: Any) -> None:
    api(page, server, "POST", "/services", {"slug": slug, "name": slug.title()})
    for kind, title, *details in stories:
        body = {"kind": kind, "title": title, "details": details[0] if details else {}}
        api(page, server, "POST", f"/services/{slug}/stories", body)


def move(page: Page, server: Server, slug: str, key: str, column: str) -> None:
    api(page, server, "POST", f"/services/{slug}/stories/{key}/moves", {"column": column})


def tick(page: Page, server: Server, slug: str, key: str, *items: str) -> None:
    for item in items:
        api(page, server, "POST", f"/services/{slug}/stories/{key}/checks", {"item": item})


def into_progress(page: Page, server: Server, slug: str, key: str) -> None:
    move(page, server, slug, key, "Ready")
    tick(page, server, slug, key, "Acceptance criteria agreed", "Estimated")
    move(page, server, slug, key, "In progress")


def drag(page: Page, handle: Locator, target: Locator, *, at: float = 0.5) -> None:
    """Drag by the mouse, in small steps as a hand would (SortableJS follows the pointer)."""
    target.scroll_into_view_if_needed()
    handle.scroll_into_view_if_needed()
    start, end = handle.bounding_box(), target.bounding_box()
    assert start is not None and end is not None
    x, y = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    to_y = end["y"] + end["height"] * at
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 4, y + 4, steps=4)
    page.mouse.move(end["x"] + end["width"] / 2, to_y, steps=25)
    page.mouse.move(end["x"] + end["width"] / 2, to_y + 2, steps=4)
    page.mouse.up()


def column(page: Page, name: str) -> Locator:
    return page.locator(f'[data-cards][data-column="{name}"]')


def test_a_card_dragged_into_a_full_column_needs_a_reason_shown_on_the_card(
    server: Server, page: Page
) -> None:
    sign_in(page, server, server.user)
    service_with_stories(page, server, "wip", ("user", "Pay by card"), ("user", "Refunds"))
    api(page, server, "PATCH", "/services/wip/board/columns/In%20progress", {"wip_limit": 1})
    into_progress(page, server, "wip", "S-1")
    move(page, server, "wip", "S-2", "Ready")
    tick(page, server, "wip", "S-2", "Acceptance criteria agreed", "Estimated")

    page.goto(f"{server.url}/services/wip/board/")
    heading = page.locator("#board").get_by_role("heading", name="In progress")
    expect(heading).to_contain_text("1/1")
    expect(heading).to_contain_text("FULL")
    drag(page, page.locator("#card-S-2 .drag-handle"), column(page, "In progress"))

    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text('WIP limit reached in "In progress" (1/1)')
    expect(column(page, "Ready").locator("#card-S-2")).to_be_visible()  # it went back

    dialog.get_by_role("button", name="Override and move").click()
    expect(dialog.get_by_role("alert")).to_contain_text("A WIP override needs a reason")
    expect(dialog).to_be_visible()

    dialog.get_by_label("Why must S-2 go in anyway?").fill("Hotfix for INC-7, cannot wait")
    dialog.get_by_role("button", name="Override and move").click()
    expect(dialog).to_be_hidden()
    card = column(page, "In progress").locator("#card-S-2")
    expect(card).to_contain_text("WIP override: Hotfix for INC-7, cannot wait — alice")
    expect(heading).to_contain_text("2/1")
    expect(page.locator("#messages")).to_contain_text("S-2 is in “In progress”")

    page.reload()
    expect(column(page, "In progress").locator("#card-S-2")).to_contain_text(
        "WIP override: Hotfix for INC-7, cannot wait — alice"
    )


def test_a_card_whose_scenarios_have_not_passed_is_stopped_by_the_gate(
    server: Server, page: Page
) -> None:
    sign_in(page, server, server.user)
    service_with_stories(
        page,
        server,
        "gate",
        ("user", "Pay by card"),
        ("test", "Card payments", {"gherkin": FEATURE}),
    )
    into_progress(page, server, "gate", "S-1")
    tick(page, server, "gate", "S-1", "Code reviewed")
    move(page, server, "gate", "S-1", "Review")

    page.goto(f"{server.url}/services/gate/board/")
    card = page.locator("#card-S-1")
    expect(card).to_contain_text("not run")
    # The definition of done is ticked on the card itself, in place.
    with page.expect_response(lambda r: r.url.endswith("/board/") and r.request.method == "GET"):
        card.get_by_label("Demonstrated to the service master").check()
    expect(
        page.locator("#card-S-1").get_by_label("Demonstrated to the service master")
    ).to_be_checked()

    drag(page, page.locator("#card-S-1 .drag-handle"), column(page, "Done"))

    refusal = column(page, "Review").locator("#card-S-1 [data-refusal]")
    expect(refusal).to_contain_text('S-1 cannot leave "Review"')
    expect(refusal).to_contain_text("its scenarios do not all pass on the latest default-branch")
    expect(refusal).to_contain_text("0/1 passed")
    expect(column(page, "Done").locator(".board-card")).to_have_count(0)
    expect(page.get_by_role("dialog")).to_be_hidden()


def test_the_service_master_reorders_the_backlog_by_drag_and_a_stale_order_is_reloaded(
    server: Server, page: Page
) -> None:
    sign_in(page, server, server.user)
    service_with_stories(
        page,
        server,
        "order",
        ("user", "First"),
        ("user", "Second"),
        ("user", "Third"),
        ("user", "Fourth"),
    )
    page.goto(f"{server.url}/services/order/backlog/")
    rows = page.locator("#story-list .story-row")
    expect(rows).to_have_count(4)

    drag(page, page.locator("#story-S-4 .drag-handle"), page.locator("#story-S-2"), at=0.3)
    expect(page.locator("#messages")).to_contain_text("S-4 is now after S-1.")
    order = ["S-1", "S-4", "S-2", "S-3"]
    expect(rows.nth(1)).to_have_attribute("data-key", "S-4")
    assert [row.get_attribute("data-key") for row in rows.all()] == order
    page.reload()
    assert [row.get_attribute("data-key") for row in rows.all()] == order

    # Someone else moves S-3 while this page still shows its old place.
    api(
        page,
        server,
        "POST",
        "/services/order/stories/S-3/rank",
        {"after": "S-1", "expected_rank": 3072},
    )
    drag(page, page.locator("#story-S-3 .drag-handle"), page.locator("#story-S-2"), at=0.3)
    expect(page.locator("#messages")).to_contain_text("Someone else moved it, reloaded")
    expect(rows.nth(1)).to_have_attribute("data-key", "S-3")
    assert [row.get_attribute("data-key") for row in rows.all()] == ["S-1", "S-3", "S-4", "S-2"]


def test_a_new_test_story_with_bad_gherkin_is_refused_beside_the_form_and_keeps_the_input(
    server: Server, page: Page
) -> None:
    sign_in(page, server, server.user)
    service_with_stories(page, server, "stories", ("user", "Pay by card"))
    page.goto(f"{server.url}/services/stories/backlog/")
    form = page.locator("#new-story")
    expect(form.get_by_label("As a")).to_be_visible()  # a user story by default
    form.locator(".kind-option", has_text="Test story").click()
    expect(form.get_by_role("radio", name="Test story")).to_be_checked()
    expect(form.get_by_label("As a")).to_be_hidden()
    form.get_by_label("Title").fill("Card payments")
    form.get_by_label("Labels").fill("checkout")
    gherkin = "Feature: Pay\n  @S-1\n  Scenario: paid\n    Given a card\n  Nonsense line\n"
    form.get_by_label("Gherkin").fill(gherkin)
    page.evaluate("window.obeyaStayed = true")
    form.get_by_role("button", name="Add story").click()

    expect(form.get_by_role("alert")).to_contain_text("Gherkin: 5:")
    expect(form.get_by_label("Title")).to_have_value("Card payments")
    expect(form.get_by_label("Labels")).to_have_value("checkout")
    expect(form.get_by_label("Gherkin")).to_have_value(gherkin)
    expect(form.get_by_label("Gherkin")).to_have_attribute("aria-invalid", "true")

    form.get_by_label("Gherkin").fill(gherkin.replace("  Nonsense line\n", "    Then it is paid\n"))
    form.get_by_role("button", name="Add story").click()
    expect(page.locator("#messages")).to_contain_text("S-2 “Card payments” added")
    expect(page.locator("#story-S-2")).to_contain_text("Card payments")
    expect(page.locator("#story-S-1")).to_contain_text("not run")
    expect(form.get_by_label("Title")).to_have_value("")
    assert page.evaluate("window.obeyaStayed") is True  # updated in place, no reload
    # The list swapped in place can still be dragged.
    assert page.evaluate("Boolean(Sortable.get(document.getElementById('story-list')))")
    drag(page, page.locator("#story-S-1 .drag-handle"), page.locator("#story-S-2"), at=0.7)
    expect(page.locator("#messages")).to_contain_text("S-1 is now after S-2.")
