"""A job's page takes any ``attempt`` it is given and answers with a page, never a 500."""

from __future__ import annotations

import pytest
from django.test import Client

from obeya.pipelines import leases, runs
from tests.conftest import PASSWORD, actor


@pytest.mark.parametrize("attempt", ["abc", "-1", "1e3", "99999999999999999999", ""])
def test_an_attempt_that_is_not_one_shows_the_latest(alice, service, runner, attempt):
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    client = Client()
    assert client.login(username=alice.username, password=PASSWORD)
    page = client.get(f"/services/svc/jobs/{claim.job.pk}/", {"attempt": attempt})
    assert page.status_code == 200
