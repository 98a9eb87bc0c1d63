"""The pipeline pages in a real browser, with a real server running real jobs.

Each test gets its own `obeya serve` with two embedded runners and its own git repository,
so run numbers and the andon cord start fresh.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.browsing import Person, Server, sign_in
from tests.e2e.test_server_crash import PASSWORD, admin_token, api_client, serving
from tests.pipelines.conftest import Repo, git
from tests.processes import clean_env

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ANN = Person("ann", PASSWORD)
JOB_DONE_MS = 20_000  # a job: claim, check out, run, report; the page polls every 2 s
GREEN = """\
stages: [build, test]
jobs:
  build:
    stage: build
    script:
      - echo compiling
      - echo linking
  unit:
    stage: test
    script: [echo unit tests pass]
  lint:
    stage: test
    script: [echo lint is clean]
"""
# The unit tests fail on the first attempt only, so a retry turns the run green.
RED = GREEN.replace(
    "script: [echo unit tests pass]",
    """script: ['test "$OBEYA_JOB_ATTEMPT" -gt 1 || exit 3', echo unit tests pass]""",
)
SLOW = """\
jobs:
  wait:
    stage: build
    script: [echo waiting, sleep 60]
"""


@dataclass(frozen=True)
class Stack:
    server: Server
    repo: Repo

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A server with two embedded runners and the service "svc" on a GREEN repository."""
    repo = Repo(tmp_path / "repo")
    repo.commit({"obeya.yml": GREEN}, "add the pipeline")
    # A 3 s lease makes runners heartbeat every second, so a cancel lands within one.
    env = clean_env(tmp_path / "data", OBEYA_RUNNERS="2", OBEYA_LEASE_SECONDS="3")
    token = admin_token(env)
    with serving(env) as served, api_client(served.url, token) as api:
        api.post(
            "/services", json={"slug": "svc", "name": "Svc", "repository_url": str(repo.path)}
        ).raise_for_status()
        yield Stack(Server(served.url, ANN, ANN, tmp_path / "data"), repo)


def job_card(page: Page, name: str) -> Locator:
    return page.locator("li.job-card").filter(has=page.get_by_role("link", name=name, exact=True))


def run_status(page: Page) -> Locator:
    return page.get_by_role("heading", level=1).locator(".status")


def start_run(page: Page, stack: Stack, ref: str = "") -> None:
    page.goto(f"{stack.url}/services/svc/runs/")
    if ref:
        page.get_by_label("Branch, tag or commit").fill(ref)
    page.get_by_role("button", name="Run pipeline").click()
    expect(page).to_have_url(f"{stack.url}/services/svc/runs/1/")


def test_a_run_started_from_the_runs_page_goes_green_and_its_log_links_to_lines(
    stack: Stack, page: Page
) -> None:
    sign_in(page, stack.server, ANN)
    start_run(page, stack, "main")

    expect(page.locator(".stages .stage h2")).to_have_text(["build", "test"])
    # Nobody reloads: the page refreshes itself while the run is live.
    for name in ("build", "unit", "lint"):
        expect(job_card(page, name).locator(".status")).to_have_text(
            "succeeded", timeout=JOB_DONE_MS
        )
    expect(run_status(page)).to_have_text("succeeded")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)

    job_card(page, "build").get_by_role("link", name="build", exact=True).click()
    expect(page).to_have_url(re.compile(rf"{stack.url}/services/svc/jobs/\d+/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("build")
    job_page = page.url
    compiled = page.locator("#log .line").filter(has_text=re.compile(r"^\d+compiling\s*$"))
    expect(compiled).to_have_count(1)
    number = compiled.locator("a.ln").inner_text()
    expect(page.locator("#log .line").nth(int(number) - 1)).to_have_id(f"L{number}")

    page.locator("#L2 a.ln").click()
    expect(page).to_have_url(re.compile(r"#L2$"))
    highlighted = page.locator("#L2").evaluate("line => getComputedStyle(line).backgroundColor")
    plain = page.locator("#L1").evaluate("line => getComputedStyle(line).backgroundColor")
    assert highlighted != plain, "the line the address points at is not highlighted"
    page.goto(f"{job_page}#L3")
    expect(page.locator("#L3")).to_have_css("background-color", highlighted)


def test_a_failing_run_pulls_the_andon_cord_and_a_retry_releases_it(
    stack: Stack, page: Page
) -> None:
    stack.repo.commit({"obeya.yml": RED}, "break the unit tests")
    sign_in(page, stack.server, ANN)
    start_run(page, stack)  # the default branch, main

    unit = job_card(page, "unit")
    expect(unit.locator(".status")).to_have_text("failed", timeout=JOB_DONE_MS)
    expect(unit.locator(".reason")).to_have_text("script_failure: exit code 3")
    expect(job_card(page, "lint").locator(".status")).to_have_text("succeeded", timeout=JOB_DONE_MS)
    expect(run_status(page)).to_have_text("failed", timeout=JOB_DONE_MS)

    # The banner is on every page of the service: wait for the Overview page itself.
    page.get_by_role("link", name="Overview").click()
    expect(page).to_have_url(f"{stack.url}/services/svc/")
    banner = page.get_by_test_id("andon-banner")
    expect(banner).to_contain_text("Andon pulled — the line is stopped.")
    expect(banner).to_contain_text("run #1 failed on main")

    page.goto(f"{stack.url}/services/svc/runs/1/")
    job_card(page, "unit").get_by_role("button", name="Retry").click()
    expect(page).to_have_url(re.compile(rf"{stack.url}/services/svc/jobs/\d+/$"))
    # The job's page follows the new attempt and reloads itself when it ends (which may
    # come before the "Job queued again." message could be read: it is not checked).
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=JOB_DONE_MS)
    attempts = page.get_by_role("navigation", name="Attempts")
    expect(attempts).to_contain_text("Attempt 1: failed")
    expect(attempts).to_contain_text("Attempt 2: succeeded")
    page.goto(f"{stack.url}/services/svc/runs/1/")
    expect(job_card(page, "unit").locator(".status")).to_have_text("succeeded", timeout=JOB_DONE_MS)
    expect(job_card(page, "unit")).to_contain_text("attempt 2")
    expect(run_status(page)).to_have_text("succeeded", timeout=JOB_DONE_MS)
    page.get_by_role("link", name="Overview").click()
    expect(page).to_have_url(f"{stack.url}/services/svc/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Svc")
    expect(page.get_by_test_id("andon-banner")).to_have_count(0)


def test_a_running_run_is_canceled_from_its_page(stack: Stack, page: Page) -> None:
    git(stack.repo.path, "checkout", "-q", "-b", "slow")
    stack.repo.commit({"obeya.yml": SLOW}, "a job that takes a minute")
    git(stack.repo.path, "checkout", "-q", "main")
    sign_in(page, stack.server, ANN)
    start_run(page, stack, "slow")

    wait = job_card(page, "wait")
    expect(wait.locator(".status")).to_have_text("running", timeout=JOB_DONE_MS)
    page.get_by_role("button", name="Cancel run").click()
    expect(page.get_by_role("status")).to_contain_text("Run #1 canceled.")
    expect(wait.locator(".status")).to_have_text("canceled", timeout=10_000)
    expect(run_status(page)).to_have_text("canceled", timeout=10_000)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(wait.get_by_role("button", name="Retry")).to_be_visible()
