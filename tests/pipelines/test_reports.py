"""JUnit reports: parsed into test cases, shown per run."""

from __future__ import annotations

import pytest

from obeya.core.errors import InvalidInput
from obeya.pipelines import leases, reports, runs
from tests.conftest import actor

JUNIT = b"""<?xml version="1.0"?>
<testsuites>
  <testsuite name="unit">
    <testcase classname="app.test_greet" name="test_hello" time="0.01"/>
    <testcase classname="app.test_greet" name="test_bye" time="0.2">
      <failure message="expected bye">Traceback...</failure>
    </testcase>
    <testcase classname="app.test_greet" name="test_later"><skipped/></testcase>
    <testcase classname="app.test_io" name="test_disk"><error message="no disk"/></testcase>
  </testsuite>
  <testsuite name="acceptance">
    <testcase classname="Greeting" name="Scenario: say hello"/>
  </testsuite>
</testsuites>
"""


def test_parse_junit_reads_every_status():
    cases = reports.parse_junit(JUNIT)
    assert [(c.suite, c.name, c.status) for c in cases] == [
        ("unit", "test_hello", "passed"),
        ("unit", "test_bye", "failed"),
        ("unit", "test_later", "skipped"),
        ("unit", "test_disk", "error"),
        ("acceptance", "Scenario: say hello", "passed"),
    ]
    assert cases[1].message == "expected bye" and cases[1].duration_s == 0.2


def test_a_single_testsuite_document_works():
    cases = reports.parse_junit(b'<testsuite name="s"><testcase name="t"/></testsuite>')
    assert [(c.suite, c.name, c.status) for c in cases] == [("s", "t", "passed")]


@pytest.mark.parametrize(
    "data",
    [
        b"not xml at all",
        b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa">]><testsuite/>',
    ],
)
def test_bad_reports_are_refused_with_the_file_name(data):
    with pytest.raises(InvalidInput, match=r"reports/unit\.xml"):
        reports.parse_junit(data, "reports/unit.xml")


def test_uploaded_cases_show_in_the_run(alice, service, runner, api_for):
    run = runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    assert reports.upload(runner, claim.job.pk, claim.lease_token, "reports/unit.xml", JUNIT) == 5
    assert reports.summary(run) == {"total": 5, "passed": 2, "failed": 2, "skipped": 1}
    body = api_for(alice).get(f"/services/svc/runs/{run.number}/tests?status=failed").body
    assert [c["name"] for c in body["cases"]] == ["test_bye", "test_disk"]  # errors count
    with pytest.raises(leases.StaleLease):
        reports.upload(runner, claim.job.pk, "forged", "x.xml", JUNIT)
