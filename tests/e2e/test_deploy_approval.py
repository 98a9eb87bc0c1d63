"""A production deploy approved in a real browser, by the right person, after a refusal.

A real `obeya serve` with an embedded runner and a deployer: the pipeline packages a
release from a real git repository, the deployer puts it on staging (a local target under
the test's tmp dir, checked by a health command), and production waits for a gatekeeper.
A developer's approval is refused on the page; the gatekeeper's is carried out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.browsing import Person, Server, sign_in
from tests.e2e.test_pipeline_pages import job_card
from tests.e2e.test_server_crash import PASSWORD, admin_token, api_client, serving
from tests.pipelines.conftest import Repo
from tests.processes import clean_env, run_obeya

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ANN = Person("ann", PASSWORD)  # administrator: sets the service up, triggers the run
DEV = Person("dev", PASSWORD)
GATE = Person("gate", PASSWORD)
DEPLOYED_MS = 60_000  # package job, then a deploy with its warm-up; pages poll meanwhile
SPEC = """\
stages: [package, staging, production]
jobs:
  package:
    stage: package
    script:
      - echo 1.4.2 > VERSION
      - echo healthy > STATUS
    artifacts: {paths: [VERSION, STATUS]}
  to-staging:
    stage: staging
    environment: staging
    deploy: {artifact: package}
  to-production:
    stage: production
    environment: production
    deploy: {artifact: package}
"""


@dataclass(frozen=True)
class Stack:
    server: Server
    targets: Path

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A server with one runner and one deployer; "svc" with a developer and a gatekeeper."""
    repo = Repo(tmp_path / "repo")
    repo.commit({"obeya.yml": SPEC}, "package and promote")
    env = clean_env(tmp_path / "data", OBEYA_RUNNERS="1", OBEYA_DEPLOYERS="1")
    token = admin_token(env)
    for person in (DEV, GATE):
        made = run_obeya(
            "createuser", person.username, "--password-stdin", env=env, stdin=person.password
        )
        assert made.returncode == 0, made.stderr
    with serving(env) as served, api_client(served.url, token) as api:
        api.post(
            "/services", json={"slug": "svc", "name": "Svc", "repository_url": str(repo.path)}
        ).raise_for_status()
        for person, role in ((DEV, "developer"), (GATE, "gatekeeper")):
            api.post(
                "/services/svc/members", json={"username": person.username, "role": role}
            ).raise_for_status()
        yield Stack(Server(served.url, ANN, ANN, tmp_path / "data"), tmp_path / "targets")


def define_environment(page: Page, stack: Stack, name: str, *, protected: bool) -> None:
    """Fill the New environment form of the Environments tab."""
    page.goto(f"{stack.url}/services/svc/environments/")
    form = page.locator("#new-environment")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Tier").select_option(name)
    if protected:
        form.get_by_label("Protected").check()
        form.get_by_label("Approvals needed").fill("1")
    form.get_by_label("Target directory").fill(str(stack.targets / name))
    form.get_by_label("Check by").select_option("command")
    form.get_by_label("Health command").fill("grep -q healthy STATUS")
    form.get_by_role("button", name="Define environment").click()
    expect(page.get_by_role("status")).to_contain_text(f"Environment {name} defined.")


def card(page: Page, name: str) -> Locator:
    return page.locator(f'section.env-card[data-environment="{name}"]')


def switch_to(page: Page, stack: Stack, person: Person) -> None:
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, stack.server, person)


def test_a_gatekeeper_approves_a_production_deploy_after_a_developer_is_refused(
    stack: Stack, page: Page
) -> None:
    sign_in(page, stack.server, ANN)
    define_environment(page, stack, "staging", protected=False)
    define_environment(page, stack, "production", protected=True)
    expect(page.locator("section.env-card h2")).to_have_text(["staging", "production"])

    page.goto(f"{stack.url}/services/svc/runs/")
    page.get_by_role("button", name="Run pipeline").click()
    expect(page).to_have_url(f"{stack.url}/services/svc/runs/1/")
    # The run's page follows it: the package job runs, the deployer puts it on staging,
    # and production waits for approval.
    expect(job_card(page, "to-staging").locator(".status")).to_have_text(
        "succeeded", timeout=DEPLOYED_MS
    )
    expect(job_card(page, "to-production").locator(".status")).to_contain_text(
        "waiting", timeout=DEPLOYED_MS
    )

    switch_to(page, stack, DEV)
    page.goto(f"{stack.url}/services/svc/environments/")
    staging = card(page, "staging")
    expect(staging.get_by_test_id("health")).to_have_text("healthy")
    expect(staging.get_by_test_id("version")).to_have_text("1.4.2")
    production = card(page, "production")
    expect(production).to_contain_text("protected")
    expect(production).to_contain_text("Nothing deployed yet.")
    waiting = production.locator(".waiting-item")
    expect(waiting).to_have_count(1)
    expect(waiting.locator(".status")).to_have_text("waiting for approval")
    waiting.get_by_label("Comment").fill("staging looks fine to me")
    waiting.get_by_role("button", name="Approve").click()

    production = card(page, "production")
    refusal = production.get_by_role("alert")
    expect(refusal).to_contain_text(
        "approving deployments to production needs the gatekeeper role on svc"
    )
    expect(production.get_by_label("Comment")).to_have_value("staging looks fine to me")
    expect(production.locator(".waiting-item .status")).to_have_text("waiting for approval")

    switch_to(page, stack, GATE)
    page.goto(f"{stack.url}/services/svc/environments/")
    card(page, "production").locator(".waiting-item a.strong").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("to production")
    expect(page.locator("#deployment-status")).to_have_text("waiting for approval")
    page.get_by_label("Comment").fill("release notes checked, staging is healthy")
    page.get_by_role("button", name="Approve").click()

    expect(page.get_by_role("status")).to_contain_text("Approved deployment")
    # The server's deployer carries it out; the page follows without a reload.
    expect(page.locator("#deployment-status")).to_have_text("succeeded", timeout=DEPLOYED_MS)
    approvals = page.locator("#approvals")
    expect(approvals).to_contain_text("✓ Approved by gate")
    expect(approvals).to_contain_text("release notes checked, staging is healthy")
    expect(page.locator("#deployment-log")).to_contain_text("is live")

    page.goto(f"{stack.url}/services/svc/environments/")
    production = card(page, "production")
    expect(production.get_by_test_id("health")).to_have_text("healthy")
    expect(production.get_by_test_id("version")).to_have_text("1.4.2")
    expect(production).to_contain_text("gate")
    expect(production.locator(".waiting-item")).to_have_count(0)
    assert (stack.targets / "production" / "current" / "VERSION").read_text() == "1.4.2\n"
