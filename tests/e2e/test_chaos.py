"""RELIABILITY A1-A3: a short run of the restart chaos (`make chaos` runs 200 kills).

`obeya serve` is killed with SIGKILL (its whole process group) at random moments while
pipelines run, and started again on the same data dir, three times: a server's start is
most of each round's time. After each restart and at the end, tests.chaos checks every
run, job, attempt and log read before the kill.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from obeya.pipelines.background import REAP_INTERVAL_S
from tests.chaos import Plan, chaos
from tests.chaos.book import REAP_S

pytestmark = pytest.mark.e2e


def test_the_chaos_knows_the_reapers_tick() -> None:
    assert REAP_S == REAP_INTERVAL_S


def test_kills_mid_pipeline_leave_every_run_job_and_log_as_they_must_be(tmp_path: Path) -> None:
    report = chaos(Plan(kills=3, seed=13, max_delay_s=2.0), tmp_path, say=print)

    assert report.violations == [], report.summary()
    assert report.book.kills == 3
    assert report.book.mid_job >= 1, report.summary()  # it did kill mid-pipeline
    assert report.compared_bytes > 0, report.summary()  # and had logs to compare
    assert set(report.book.runs.values()) <= {"succeeded", "failed"}, report.summary()
