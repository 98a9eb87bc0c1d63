"""The pages break no rule of their Content-Security-Policy: Chromium, which enforces it,
reports no refused script, style, image or connection on any of them, charts and live
updates included."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect

from tests.e2e.browsing import Server, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SERVICE = "/services/hello-service"
PAGES = (
    "/services/",
    f"{SERVICE}/",
    f"{SERVICE}/backlog/",
    f"{SERVICE}/runs/",
    f"{SERVICE}/runs/1/",
    f"{SERVICE}/environments/",
    f"{SERVICE}/operations/",
    f"{SERVICE}/metrics/",
    "/room/",
    "/audit/",
    "/account/",
)


def test_no_page_is_refused_anything_by_its_policy(demo_server: Server, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    refused: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(f"{page.url}: {message.text}")

    page.on("console", note)
    try:
        sign_in(page, demo_server, demo_server.admin)
        # The board's flow charts: drawn by script from the API, after the page loaded.
        page.goto(f"{demo_server.url}{SERVICE}/board/")
        expect(page.locator("[data-flow-status]")).not_to_have_text("Loading flow metrics…")
        for path in PAGES:
            response = page.goto(f"{demo_server.url}{path}", wait_until="load")
            assert response is not None and response.status == 200, path
        assert refused == []
    finally:
        context.close()
