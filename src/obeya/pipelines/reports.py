"""Test reports: JUnit XML from a job, parsed into test cases (junitparser).

The backlog matches Gherkin scenarios to these cases by name, so names are kept exactly
as the test runner wrote them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from junitparser import JUnitXml, TestSuite
from junitparser.junitparser import JUnitXmlError

from obeya.core.actors import Actor, system_actor
from obeya.core.errors import InvalidInput
from obeya.pipelines.leases import held_job
from obeya.pipelines.models import Job, Run, Runner, TestCase

MAX_REPORT_BYTES = 10 * 1024 * 1024
MAX_CASES = 20_000
# Entities are how XML bombs grow; a test report has no use for a DOCTYPE.
_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


@dataclass(frozen=True)
class CaseResult:
    suite: str
    classname: str
    name: str
    status: str
    duration_s: float
    message: str


def _status(case: Any) -> tuple[str, str]:
    for result in case.result or []:
        kind = type(result).__name__.lower()
        text = result.message or result.text or ""
        if kind in {"failure", "error"}:
            return ("failed" if kind == "failure" else "error"), str(text)[:4000]
        if kind == "skipped":
            return "skipped", str(text)[:4000]
    return "passed", ""


def _cases(suite: Any, suite_name: str) -> Iterable[CaseResult]:
    for case in suite:
        if isinstance(case, TestSuite):  # nested suites
            yield from _cases(case, case.name or suite_name)
            continue
        status, message = _status(case)
        yield CaseResult(
            suite_name,
            case.classname or "",
            case.name or "",
            status,
            float(case.time or 0),
            message,
        )


def parse_junit(data: bytes, file: str = "report.xml") -> list[CaseResult]:
    """The test cases in a JUnit XML document; InvalidInput names the file when it is not."""
    if len(data) > MAX_REPORT_BYTES:
        raise InvalidInput(f"{file}: larger than {MAX_REPORT_BYTES} bytes", field="report")
    if _DOCTYPE.search(data):
        raise InvalidInput(f"{file}: DOCTYPE and entities are not allowed", field="report")
    try:
        document = JUnitXml.fromstring(data)
    except (JUnitXmlError, ValueError, SyntaxError) as error:
        raise InvalidInput(f"{file}: not JUnit XML ({error})", field="report") from None
    found: list[CaseResult] = []
    for item in document:
        if isinstance(item, TestSuite):
            found.extend(_cases(item, item.name or ""))
        else:
            found.extend(_cases([item], getattr(document, "name", "") or ""))
        if len(found) > MAX_CASES:
            raise InvalidInput(f"{file}: more than {MAX_CASES} test cases", field="report")
    return found


def upload(
    runner: Runner,
    job_id: int,
    lease_token: str,
    file: str,
    data: bytes,
    *,
    clock: Actor | None = None,
) -> int:
    """Store the cases of one report file of the job's current attempt; returns the count."""
    cases = parse_junit(data, file)
    actor = clock or system_actor()
    with transaction.atomic():
        job = held_job(runner, job_id, lease_token, actor.now())
        # A resent report (its answer was lost) replaces the first copy, never doubles it.
        TestCase.objects.filter(job=job, attempt=job.attempt, file=file[:255]).delete()
        TestCase.objects.bulk_create(
            TestCase(
                job=job,
                attempt=job.attempt,
                suite=c.suite[:255],
                classname=c.classname[:255],
                name=c.name[:500],
                status=c.status,
                duration_s=c.duration_s,
                message=c.message,
                file=file[:255],
            )
            for c in cases
        )
    return len(cases)


def cases_of(job: Job, attempt: int | None = None) -> QuerySet[TestCase]:
    return TestCase.objects.filter(job=job, attempt=attempt or job.attempt)


def cases_of_run(run: Run) -> QuerySet[TestCase]:
    """Every job's latest-attempt test cases in a run (the backlog reads scenarios here)."""
    latest = Q()
    for job_id, attempt in Job.objects.filter(run=run).values_list("pk", "attempt"):
        latest |= Q(job_id=job_id, attempt=attempt)
    if not latest:
        return TestCase.objects.none()
    return TestCase.objects.filter(latest).select_related("job")


def summary(run: Run) -> dict[str, int]:
    counts = cases_of_run(run).aggregate(
        total=Count("id"),
        passed=Count("id", filter=Q(status="passed")),
        failed=Count("id", filter=Q(status__in=["failed", "error"])),
        skipped=Count("id", filter=Q(status="skipped")),
    )
    return {key: int(value or 0) for key, value in counts.items()}
