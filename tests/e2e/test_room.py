"""The Obeya room reads on a wall screen and on a phone: no text overlaps another, nothing
scrolls sideways, the type is large; it shows the demo's real production deployments and
follows the andon live; a service's Metrics tab draws its value stream.

The layout tests use the demo as `obeya demo` loads it (`demo_server`: environments, a board
over its WIP limit, no deployment yet). One test plays the demo to its end with
`obeya demo --serve` (embedded runners run hello-service's pipeline, the demo's director
approves production), because only then have real deployments reached production. Screenshots
land in $OBEYA_E2E_SCREENSHOTS or the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.e2e.browsing import Person, Server, sign_in
from tests.e2e.conftest import OBEYA, _free_port, _obeya, _server_env, _stop, _wait_until_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SCREENS: dict[str, ViewportSize] = {
    "wall": {"width": 1920, "height": 1080},
    "phone": {"width": 390, "height": 844},
}
HELLO = "hello-service"
DEMO_PORTS = (8101, 8102)  # where the demo's director starts hello-service (demo_deploy.PORTS)
PRODUCTION_WAIT_S = 240.0

# Every pair of visible text boxes inside each element matching the selector: text nodes by
# their line boxes (a range's client rects), SVG text by its element's box. Returns what
# overlaps and what sticks out of its container, in words.
OVERLAPS = """
selector => {
  const problems = [];
  for (const container of document.querySelectorAll(selector)) {
    const outer = container.getBoundingClientRect();
    if (outer.width === 0 || outer.height === 0) continue;
    const boxes = [];
    const walker = document.createTreeWalker(container, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      const text = node.textContent.trim();
      const owner = node.parentElement;
      const skipped = "title, desc, script, style, .visually-hidden";
      if (!text || !owner || owner.closest(skipped)) continue;
      const svgText = owner.closest("text");
      if (svgText) {
        if (svgText.dataset.seen) continue;
        svgText.dataset.seen = "1";
        const r = svgText.getBoundingClientRect();
        if (r.width > 0 && r.height > 0) boxes.push({ text: svgText.textContent.trim(), r });
        continue;
      }
      const range = document.createRange();
      range.selectNodeContents(node);
      for (const r of range.getClientRects()) {
        if (r.width > 0.5 && r.height > 0.5) boxes.push({ text, r });
      }
    }
    for (const b of boxes) {
      if (b.r.left < outer.left - 1 || b.r.right > outer.right + 1) {
        problems.push(`"${b.text.slice(0, 40)}" sticks out of its ${selector}`);
      }
    }
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i].r, b = boxes[j].r;
        const wide = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const high = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (wide > 2 && high > 2) {
          problems.push(`"${boxes[i].text.slice(0, 40)}" overlaps "${boxes[j].text.slice(0, 40)}"`);
        }
      }
    }
  }
  document.querySelectorAll("[data-seen]").forEach(e => delete e.dataset.seen);
  return problems;
}
"""


def _folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("OBEYA_E2E_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _fits(page: Page, *selectors: str) -> None:
    """No text overlaps in any of the selectors' elements; the page never scrolls sideways."""
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"{page.url} is {width}px wide in a {inner}px window"
    for selector in selectors:
        assert page.locator(selector).count() > 0, f"nothing matches {selector} on {page.url}"
        problems = page.evaluate(OVERLAPS, selector)
        assert problems == [], f"{page.url}: {problems[:10]}"


def _open_room(page: Page, server: Server, screen: str) -> None:
    page.set_viewport_size(SCREENS[screen])
    page.goto(f"{server.url}/room/")
    expect(page.get_by_role("heading", name="Obeya room")).to_be_visible()
    expect(page.locator("[data-room-connection]")).to_have_text("● live", timeout=15_000)


@pytest.mark.parametrize("screen", list(SCREENS))
def test_the_room_reads_on_a_wall_and_on_a_phone(
    demo_server: Server, page: Page, screen: str, tmp_path: Path
) -> None:
    sign_in(page, demo_server, demo_server.admin)
    _open_room(page, demo_server, screen)
    page.screenshot(path=_folder(tmp_path) / f"room-{screen}.png", full_page=True)

    panels = page.locator("section.panel")
    assert panels.count() >= 3  # every live service of the demo
    _fits(page, "section.panel", ".room-head")
    body = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.room')).fontSize)")
    assert body >= 20, f"the room's body text is {body}px: too small for a wall"

    hello = page.locator(f'section.panel[data-service="{HELLO}"]')
    expect(hello.get_by_test_id("andon")).to_contain_text("Line running")
    expect(hello.locator(".room-envs")).to_contain_text("staging")
    expect(hello.locator(".room-envs")).to_contain_text("nothing deployed yet")
    expect(hello.locator(".room-wip")).to_contain_text("In progress 4/3 ⚠ OVER")
    expect(hello).to_contain_text("Error budget")
    if screen == "wall":
        # Side by side, and the first row of panels is whole on the screen.
        boxes = [panels.nth(i).bounding_box() for i in range(min(3, panels.count()))]
        assert all(box is not None for box in boxes)
        tops = {round(box["y"]) for box in boxes if box is not None}
        assert len(tops) == 1, f"the first panels are not in one row: {boxes}"
    else:
        first, second = panels.nth(0).bounding_box(), panels.nth(1).bounding_box()
        assert first is not None and second is not None
        assert second["y"] >= first["y"] + first["height"], "panels must stack on a phone"


@pytest.mark.parametrize("screen", list(SCREENS))
def test_the_metrics_tab_draws_the_value_stream_and_keeps_its_numbers(
    demo_server: Server, page: Page, screen: str, tmp_path: Path
) -> None:
    sign_in(page, demo_server, demo_server.admin)
    page.set_viewport_size(SCREENS[screen])
    page.goto(f"{demo_server.url}/services/{HELLO}/")
    page.get_by_role("navigation", name="Service pages").get_by_role("link", name="Metrics").click()
    expect(page.get_by_role("heading", name="Metrics", exact=True)).to_be_visible()
    page.screenshot(path=_folder(tmp_path) / f"metrics-{screen}.png", full_page=True)

    drawing = page.locator(".vsm svg:visible")
    expect(drawing).to_have_count(1)
    expect(drawing.locator("[data-stage]")).to_have_count(7)
    expect(drawing.locator("[data-stage='backlog'] rect")).to_be_visible()
    _fits(page, ".vsm", ".dora-card", ".check", ".maturity-area", ".window-picker")
    expect(page.locator(".maturity-area")).to_have_count(5)
    expect(page.locator("canvas[data-metrics-chart]")).to_have_count(3)

    page.get_by_role("link", name="Evidence: 0 items").first.click()
    expect(page.locator("details.evidence[open]")).to_have_count(1)

    page.get_by_label("Custom").fill("soon")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("alert")).to_contain_text("window 'soon' is not a number")
    expect(page.get_by_label("Custom")).to_have_value("soon")


# ---- the demo played to its end ----------------------------------------------------------------


def _production_deployments(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "obeya.sqlite3", timeout=5) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM deploy_deployment d JOIN deploy_environment e"
            " ON e.id = d.environment_id WHERE e.tier = 'production' AND d.status = 'succeeded'"
        ).fetchone()
    return int(count)


def _stop_hello_service(data_dir: Path) -> None:
    """The demo's restart hook starts hello-service detached: stop every process started for
    this data dir, until none is left (a hook still running at shutdown may start one more)."""
    marker = str(data_dir).encode()
    deadline = time.monotonic() + 15
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
        for pid in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        if not found or time.monotonic() > deadline:
            return
        time.sleep(0.5)


@pytest.fixture(scope="module")
def played_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`obeya demo --serve`, waited on until a deployment reached production."""
    import socket

    for port in DEMO_PORTS:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"port {port} is taken: the demo starts hello-service there")
    root = tmp_path_factory.mktemp("obeya-played-demo")
    _obeya(root, "demo")
    data = root / "data"
    env = _server_env(data)
    env.pop("OBEYA_RUNNERS")  # the embedded runners run the demo's pipeline
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(OBEYA), "demo", "--serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(process, url, log)
        deadline = time.monotonic() + PRODUCTION_WAIT_S
        while _production_deployments(data) == 0:
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"no deployment reached production:\n{log.read_text()[-4000:]}")
            time.sleep(1.0)
        password = (data / "demo-password").read_text().strip()
        yield Server(url, Person("admin", password), Person("alice", password), data)
    finally:
        _stop(process)
        _stop_hello_service(data)


def test_the_room_shows_real_deployments_and_follows_the_andon_live(
    played_demo: Server, page: Page, tmp_path: Path
) -> None:
    sign_in(page, played_demo, played_demo.admin)
    _open_room(page, played_demo, "wall")
    hello = page.locator(f'section.panel[data-service="{HELLO}"]')
    frequency = hello.locator("[data-metric=deployment_frequency]")
    deployed = int(frequency.get_attribute("data-deployments") or "0")
    assert deployed > 0, "the demo's production deployments are missing from the room"
    expect(frequency).to_contain_text(f"{deployed} in production")
    expect(hello.locator("[data-environment=production]")).not_to_contain_text(
        "nothing deployed yet"
    )
    _fits(page, "section.panel", ".room-head")
    page.screenshot(path=_folder(tmp_path) / "room-wall-deployed.png", full_page=True)

    # Someone pulls the cord on another screen: the room shows it without a reload.
    other = page.context.new_page()
    other.goto(f"{played_demo.url}/services/{HELLO}/runs/#andon")
    other.get_by_label("Why stop the line?").fill("checkout broken in production")
    other.get_by_role("button", name="Pull the cord").click()
    other.close()
    expect(hello.get_by_test_id("andon")).to_contain_text("ANDON PULLED", timeout=15_000)
    expect(hello.get_by_test_id("andon")).to_contain_text("checkout broken in production")
    expect(page.locator("[data-room-connection]")).to_have_text("● live")

    page.goto(f"{played_demo.url}/services/{HELLO}/metrics/")
    expect(page.locator("[data-metric=deployment_frequency] [data-testid=value]")).not_to_have_text(
        "no data"
    )
    _fits(page, ".vsm", ".dora-card")
