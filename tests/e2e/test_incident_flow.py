"""An incident in a real browser, from opening to the follow-ups of its postmortem.

The deployment it is linked to is real: the stack of ``test_deploy_approval`` (a real
`obeya serve` with a runner and a deployer, a real git repository) packages a release and
deploys it to staging and production. The incident is opened on the Operations tab,
linked to the production deployment, resolved; its postmortem is refused "human error" as a
factor, keeps what was typed, is saved, and its follow-up appears in the backlog.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browsing import sign_in
from tests.e2e.test_deploy_approval import (  # noqa: F401 - stack is the fixture itself
    ANN,
    DEPLOYED_MS,
    Stack,
    define_environment,
    stack,
)
from tests.e2e.test_pipeline_pages import job_card

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
FOLLOW_UP = "Validate config in the pipeline"


def deployed_to_production(page: Page, served: Stack) -> None:
    """Both environments defined, the pipeline run, its release live in production."""
    define_environment(page, served, "staging", protected=False)
    define_environment(page, served, "production", protected=False)
    page.goto(f"{served.url}/services/svc/runs/")
    page.get_by_role("button", name="Run pipeline").click()
    expect(page).to_have_url(f"{served.url}/services/svc/runs/1/")
    expect(job_card(page, "to-production").locator(".status")).to_have_text(
        "succeeded", timeout=DEPLOYED_MS
    )


def test_an_incident_is_linked_resolved_and_reviewed_without_blame(
    stack: Stack,  # noqa: F811 - the fixture imported above
    page: Page,
) -> None:
    sign_in(page, stack.server, ANN)
    deployed_to_production(page, stack)

    page.get_by_role("navigation", name="Service pages").get_by_role(
        "link", name="Operations"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Operations")
    expect(page.get_by_test_id("no-open-incidents")).to_be_visible()
    page.get_by_text("Open an incident").click()
    opening = page.get_by_role("form", name="Open an incident")
    opening.get_by_label("Title").fill("Checkout returns 500")
    opening.get_by_label("Severity").select_option("sev2")
    opening.get_by_role("button", name="Open incident").click()

    expect(page).to_have_url(f"{stack.url}/services/svc/operations/incidents/1/")
    expect(page.get_by_role("heading", level=1)).to_have_text("INC-1: Checkout returns 500")
    expect(page.locator("#incident-status")).to_have_text("open")

    causes = page.locator("#causes")
    choice = causes.get_by_role("combobox", name="Deployment")
    production = choice.locator("option", has_text="production").first.get_attribute("value")
    assert production is not None
    choice.select_option(production)
    causes.get_by_role("button", name="Link deployment").click()
    expect(page.get_by_role("status")).to_contain_text(f"INC-1 linked to deployment #{production}.")
    linked = page.locator(f'#causes [data-cause="{production}"]')
    expect(linked).to_contain_text(f"Deployment #{production}")
    expect(linked).to_contain_text("linked by ann")

    response = page.locator("#response")
    response.get_by_label("Note").fill("Rolled back to the previous release")
    response.get_by_role("button", name="Resolve").click()
    expect(page.locator("#incident-status")).to_have_text("resolved")
    expect(page.get_by_test_id("time-to-restore")).not_to_have_text("—")
    expect(page.locator("#timeline")).to_contain_text("Rolled back to the previous release")

    page.get_by_role("link", name="Write the postmortem").click()
    form = page.get_by_role("form", name="Postmortem")
    expect(form.get_by_label("Timeline")).to_have_value(
        re.compile(r"opened \(sev2, from manual\): Checkout returns 500")
    )
    summary = "Checkout returned 500 for 12 minutes after release 1.4.2."
    form.get_by_label("Summary").fill(summary)
    form.get_by_label("Impact").fill("Shoppers could not pay for 12 minutes.")
    form.get_by_label("Contributing factors").fill(
        "Human error\nThe config format was not validated"
    )
    form.get_by_label("Follow-up actions").fill(FOLLOW_UP)
    form.get_by_role("button", name="Save postmortem").click()

    expect(page.get_by_role("alert")).to_contain_text('"Human error" names a person, not a cause')
    expect(page.get_by_role("alert")).to_contain_text("what made the error possible")
    form = page.get_by_role("form", name="Postmortem")
    expect(form.get_by_label("Summary")).to_have_value(summary)
    expect(form.get_by_label("Follow-up actions")).to_have_value(FOLLOW_UP)
    expect(form.get_by_label("Contributing factors")).to_have_value(
        "Human error\nThe config format was not validated"
    )

    form.get_by_label("Contributing factors").fill(
        "The config format was not validated\nNo canary step for config changes"
    )
    form.get_by_role("button", name="Save postmortem").click()
    expect(page.get_by_role("status")).to_contain_text("Postmortem of INC-1 saved")
    follow_ups = page.get_by_test_id("follow-ups")
    expect(follow_ups).to_contain_text(FOLLOW_UP)

    follow_ups.get_by_role("link").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(FOLLOW_UP)
    page.goto(f"{stack.url}/services/svc/backlog/")
    expect(page.locator(".story-row", has_text=FOLLOW_UP)).to_have_count(1)

    page.goto(f"{stack.url}/services/svc/operations/")
    expect(page.get_by_test_id("no-open-incidents")).to_be_visible()
