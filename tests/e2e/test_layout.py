"""The pages fit a laptop and a phone, the phone menu opens, and the brand needs no font.

Screenshots of every page land in $OBEYA_E2E_SCREENSHOTS (or the test's tmp dir), so a
person can look at the design after a change.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.e2e.browsing import Server, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

VIEWPORTS: dict[str, ViewportSize] = {
    "laptop": {"width": 1280, "height": 800},
    "phone": {"width": 390, "height": 844},
}
PAGES = (
    "/services/",
    "/services/hello-service/",
    "/services/new/",
    "/services/hello-service/backlog/",
    "/services/hello-service/board/",
    "/services/hello-service/runs/",
    "/audit/",
    "/account/",
)


def _screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("OBEYA_E2E_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open(browser: Browser, viewport: ViewportSize) -> Page:
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(10_000)
    return context.new_page()


def _overflow(page: Page) -> tuple[int, int]:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return int(width), int(inner)


@pytest.mark.parametrize("screen", list(VIEWPORTS))
def test_every_page_fits_the_screen_without_sideways_scrolling(
    demo_server: Server, browser: Browser, screen: str, tmp_path: Path
) -> None:
    page = _open(browser, VIEWPORTS[screen])
    folder = _screenshots(tmp_path)
    try:
        page.goto(f"{demo_server.url}/login/")
        page.screenshot(path=folder / f"{screen}-login.png", full_page=True)
        sign_in(page, demo_server, demo_server.admin)
        too_wide = {}
        for path in PAGES:
            page.goto(f"{demo_server.url}{path}")
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            name = path.strip("/").replace("/", "-")
            page.screenshot(path=folder / f"{screen}-{name}.png", full_page=True)
            width, inner = _overflow(page)
            if width > inner:
                too_wide[path] = f"{width}px wide in a {inner}px window"
        assert too_wide == {}, f"pages scroll sideways on a {screen}: {too_wide}"
    finally:
        page.context.close()


def test_the_phone_menu_opens_the_navigation_by_touch_and_by_keyboard(
    demo_server: Server, browser: Browser
) -> None:
    page = _open(browser, VIEWPORTS["phone"])
    try:
        sign_in(page, demo_server, demo_server.admin)
        navigation = page.get_by_role("navigation", name="Main")
        expect(navigation).to_be_hidden()

        page.locator("label[for=nav-toggle]").click()
        expect(navigation).to_be_visible()
        navigation.get_by_role("link", name="Audit").click()
        expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()

        expect(navigation).to_be_hidden()
        page.get_by_label("Show navigation").focus()
        page.keyboard.press("Space")
        expect(navigation.get_by_role("link", name="Services")).to_be_visible()
    finally:
        page.context.close()


def test_the_brand_mark_and_favicon_are_drawn_not_typed(demo_server: Server, page: Page) -> None:
    page.goto(f"{demo_server.url}/login/")
    mark = page.locator(".brand svg.brand-mark")
    expect(mark).to_be_visible()
    box = mark.bounding_box()
    assert box is not None and box["width"] >= 24 and box["height"] >= 24
    expect(page.locator(".brand")).not_to_contain_text("大")
    icon = page.locator("link[rel=icon]")
    expect(icon).to_have_attribute("href", re.compile(r"^data:image/svg\+xml,"))
    drawn = page.evaluate(
        """href => new Promise(done => {
            const image = new Image();
            image.onload = () => done(image.naturalWidth > 0);
            image.onerror = () => done(false);
            image.src = href;
        })""",
        icon.get_attribute("href"),
    )
    assert drawn, "the favicon's data URI is not an image a browser can draw"
