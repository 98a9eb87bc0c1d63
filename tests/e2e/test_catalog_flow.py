"""The catalog in a real browser: register a service, staff it, move it, read its timeline."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browsing import Server, register_service, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_a_service_is_registered_staffed_and_moved_with_each_change_on_its_timeline(
    server: Server, page: Page
) -> None:
    sign_in(page, server, server.user)
    page.get_by_role("link", name="New service").first.click()
    page.get_by_label("Slug").fill("checkout")
    page.get_by_label("Name", exact=True).fill("Checkout")
    page.get_by_label("Owner team").fill("Team Heron")
    page.get_by_label("Vision").fill("Paying takes one click.")
    page.get_by_role("button", name="Register service").click()

    expect(page).to_have_url(f"{server.url}/services/checkout/")
    expect(page.get_by_role("status")).to_contain_text("Service “Checkout” registered")
    expect(page.get_by_test_id("stage")).to_have_text("strategy")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("alice created the service “Checkout” in stage strategy")
    expect(timeline).to_contain_text("alice gave alice the role service_master")

    # The service page updates in place (htmx): this marker would vanish on a full reload.
    page.evaluate("window.obeyaStayed = true")
    team = page.locator("#team")
    team.get_by_label("Person").fill(server.admin.username)
    team.get_by_label("Role").select_option("reliability_engineer")
    team.get_by_role("button", name="Add to team").click()

    expect(page.get_by_role("status")).to_contain_text("admin is now reliability_engineer")
    expect(team.get_by_role("row", name="admin reliability_engineer")).to_be_visible()
    expect(timeline).to_contain_text("alice gave admin the role reliability_engineer")

    lifecycle = page.locator("#lifecycle")
    lifecycle.get_by_label("Reason").fill("the market study is done")
    lifecycle.get_by_role("button", name="Move to marketing").click()

    expect(page.get_by_role("status")).to_contain_text("Moved to stage “marketing”")
    expect(page.get_by_test_id("stage")).to_have_text("marketing")
    expect(lifecycle.locator("[aria-current=step]")).to_have_text("marketing")
    expect(timeline.locator("li").first).to_contain_text(
        "alice moved the stage from strategy to marketing — “the market study is done”"
    )
    expect(timeline.locator("li")).to_have_count(4)
    assert page.evaluate("window.obeyaStayed") is True


def test_a_duplicate_slug_is_refused_on_the_page_and_the_form_keeps_what_was_typed(
    server: Server, page: Page
) -> None:
    sign_in(page, server, server.user)
    register_service(page, server, "ledger", "Ledger")
    expect(page).to_have_url(f"{server.url}/services/ledger/")

    page.goto(f"{server.url}/services/new/")
    page.get_by_label("Slug").fill("ledger")
    page.get_by_label("Name", exact=True).fill("Second ledger")
    page.get_by_label("Owner team").fill("Team Owl")
    page.get_by_label("Goals").fill("Balance every night.")
    page.get_by_role("button", name="Register service").click()

    expect(page.get_by_role("status")).to_contain_text(
        'a service with slug "ledger" already exists'
    )
    expect(page.get_by_label("Slug")).to_have_value("ledger")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Second ledger")
    expect(page.get_by_label("Owner team")).to_have_value("Team Owl")
    expect(page.get_by_label("Goals")).to_have_value("Balance every night.")


def test_a_malformed_slug_is_refused_on_the_page_and_the_form_keeps_what_was_typed(
    server: Server, page: Page
) -> None:
    sign_in(page, server, server.user)
    # Two hyphens pass the browser's pattern check, so the server's own rule must answer.
    register_service(page, server, "pay--ments", "Payments")

    expect(page.get_by_role("status")).to_contain_text('slug "pay--ments" is not valid')
    expect(page.get_by_role("heading", name="New service")).to_be_visible()
    expect(page.get_by_label("Slug")).to_have_value("pay--ments")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Payments")


def test_an_unknown_person_is_refused_on_the_service_page_and_the_form_keeps_what_was_typed(
    server: Server, page: Page
) -> None:
    sign_in(page, server, server.user)
    register_service(page, server, "inventory", "Inventory")
    team = page.locator("#team")
    team.get_by_label("Person").fill("nobody-here")
    team.get_by_label("Role").select_option("gatekeeper")
    team.get_by_role("button", name="Add to team").click()

    expect(team.get_by_role("alert")).to_contain_text('no user named "nobody-here"')
    expect(team.get_by_label("Person")).to_have_value("nobody-here")
    expect(team.get_by_label("Role")).to_have_value("gatekeeper")
    expect(page.locator("#timeline")).not_to_contain_text("nobody-here")


def test_a_wrong_password_shows_the_message_and_keeps_the_username(
    server: Server, page: Page
) -> None:
    page.goto(f"{server.url}/login/")
    page.get_by_label("Username").fill(server.user.username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    expect(page.get_by_label("Username")).to_have_value(server.user.username)
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_label("Password")).to_be_focused()
    page.goto(f"{server.url}/services/")
    expect(page).to_have_url(f"{server.url}/login/?next=/services/")
