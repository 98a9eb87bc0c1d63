"""A service whose real git repository holds feature files, and a way to run its pipeline
to the end with a JUnit report, so the run listeners sync the backlog as in production."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from obeya.backlog import services as backlog
from obeya.catalog import services as catalog
from obeya.pipelines import leases, reports, runners, runs
from obeya.pipelines.models import Run, Runner
from tests.conftest import SYSTEM, actor
from tests.pipelines.conftest import Repo

SPEC = """\
stages: [acceptance]
jobs:
  acceptance:
    stage: acceptance
    script: [python3 features/run.py reports/acceptance.xml]
    reports:
      junit: reports/acceptance.xml
"""

GREETING = """\
@S-1
Feature: Greeting
  As a visitor I want to be greeted by name so that I feel welcome.

  Scenario: A visitor is greeted by name
    Given the service is running
    When I ask for a greeting for "Ada"
    Then the answer is "Hello, Ada!"

  Scenario: A stranger is greeted as the world
    Given the service is running
    When I ask for a greeting without a name
    Then the answer is "Hello, world!"
"""

HEALTH = """\
@S-2
Feature: Health
  Scenario: The service reports its health and version
    Given the service is running
    When I ask for its health
    Then it says it is ok
"""


def junit(*cases: tuple[str, str, str]) -> bytes:
    """A JUnit report of (classname, name, status) cases; status passed, failed or error."""
    lines = []
    for classname, name, status in cases:
        attributes = f'classname="{classname}" name="{name}"'
        if status == "passed":
            lines.append(f"<testcase {attributes}/>")
        else:
            tag = {"failed": "failure", "error": "error"}[status]
            lines.append(f'<testcase {attributes}><{tag} message="{name} broke"/></testcase>')
    return ('<testsuite name="acceptance">' + "".join(lines) + "</testsuite>").encode()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repository = Repo(tmp_path / "repo")
    repository.commit(
        {
            "obeya.yml": SPEC,
            "features/greeting.feature": GREETING,
            "features/health.feature": HEALTH,
        },
        "first commit",
    )
    return repository


@pytest.fixture
def service(alice, repo: Repo):
    """Service "svc" with user stories S-1 and S-2, which the feature files tag."""
    made = catalog.create_service(actor(alice), "svc", "Svc", repository_url=str(repo.path))
    backlog.create_story(actor(alice), "svc", "user", "Greet visitors by name")
    backlog.create_story(actor(alice), "svc", "user", "Report health and version")
    return made


@pytest.fixture
def runner(db: None) -> Runner:
    made, _ = runners.register_runner(SYSTEM, "r1", ["linux"])
    return made


@pytest.fixture
def run_pipeline(
    alice, service, runner: Runner, django_capture_on_commit_callbacks
) -> Callable[..., Run]:
    """Run ``ref`` (default: main) to the end, its one job uploading ``report`` if given.

    The run listeners fire as they do after a real commit, not by calling them directly.
    """

    def run(report: bytes | None = None, ref: str | None = None, outcome: str = "succeeded"):
        with django_capture_on_commit_callbacks(execute=True):
            started = runs.create_run(actor(alice), "svc", ref)
        claim = leases.claim(runner)
        assert claim is not None, "no job to claim"
        with django_capture_on_commit_callbacks(execute=True):
            if report is not None:
                reports.upload(runner, claim.job.pk, claim.lease_token, "acceptance.xml", report)
            leases.complete(
                runner, claim.job.pk, claim.lease_token, outcome, 0 if outcome == "succeeded" else 1
            )
        started.refresh_from_db()
        return started

    return run
