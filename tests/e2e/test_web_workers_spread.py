"""Connections opened one after another (people signing in one by one) are shared out over
the processes of `obeya serve`: each new one goes to a process holding no more than the
others, where before most went to whichever process woke first."""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_server_crash import serving, wait_for
from tests.e2e.test_web_workers import answered_by, client_on, web_workers
from tests.processes import clean_env

pytestmark = pytest.mark.e2e
CONNECTIONS = 12


def test_connections_opened_one_by_one_are_shared_by_both_processes(tmp_path: Path) -> None:
    env = clean_env(tmp_path, OBEYA_WEB_WORKERS="2", OBEYA_RUNNERS="0")
    with serving(env) as served, ExitStack() as stack:
        main = served.process.pid
        workers = wait_for(lambda: web_workers(main), 30, "the web worker to start")
        client_on(served, "no-token-needed", workers).close()  # it answers by now
        everyone = {main} | workers
        holders: Counter[int | None] = Counter()
        for _ in range(CONNECTIONS):
            client = stack.enter_context(httpx.Client(base_url=served.url, timeout=10))
            holders[answered_by(client.get("/api/health").raise_for_status(), everyone)] += 1
        assert set(holders) == everyone, holders
        assert min(holders.values()) >= CONNECTIONS // 3, holders  # about half each (6 and 6)
