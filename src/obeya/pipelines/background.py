"""What `obeya serve` runs beside the web: the lease reaper, the poller, the embedded runners.

Embedded runners are the same runner code a remote machine runs (`obeya.runner`), talking
to this server over loopback HTTP, so there is one protocol to trust, not two.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from obeya.pipelines import artifacts, leases, polling
from obeya.runner.client import ServerClient
from obeya.runner.main import RunnerLoop

log = logging.getLogger("obeya.pipelines")
REAP_INTERVAL_S = 5.0
ARTIFACT_SWEEP_TICKS = 120  # every 10 minutes
POLL_CHECK_INTERVAL_S = 5.0  # how often to look for due pipelines, not how often to poll
EMBEDDED_LABELS = ["embedded"]


@dataclass
class Background:
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    runners: RunnerLoop | None = None

    def shutdown(self) -> None:
        self.stop.set()
        if self.runners is not None:
            self.runners.abort()


def _reaper(stop: threading.Event) -> None:
    ticks = 0
    while not stop.wait(REAP_INTERVAL_S):
        ticks += 1
        try:
            close_old_connections()
            reaped = leases.reap()
            if reaped:
                log.warning("reaper: %s job(s) lost their runner", reaped)
            if ticks % ARTIFACT_SWEEP_TICKS == 1:
                expired = artifacts.expire()
                if expired:
                    log.info("artifacts: %s expired and removed", expired)
        except Exception:  # the reaper must outlive a failing tick
            log.exception("reaper tick failed")
        finally:
            close_old_connections()


def _poller(stop: threading.Event) -> None:
    # A thread of its own: a slow git remote must not hold up reaping of lost jobs.
    while not stop.wait(POLL_CHECK_INTERVAL_S):
        try:
            close_old_connections()
            polling.poll_due(timezone.now())
        except Exception:  # the poller must outlive a failing tick
            log.exception("polling tick failed")
        finally:
            close_old_connections()


def start(host: str, port: int, runner_count: int) -> Background:
    background = Background()
    for target, name in ((_reaper, "reaper"), (_poller, "poller")):
        thread = threading.Thread(target=target, args=(background.stop,), name=name, daemon=True)
        thread.start()
        background.threads.append(thread)
    if runner_count > 0:
        local = "127.0.0.1" if host in {"0.0.0.0", "", "::"} else host  # noqa: S104
        token = leases.rotate_embedded_runner(
            f"embedded-{socket.gethostname()}-{port}", EMBEDDED_LABELS
        )
        client = ServerClient(f"http://{local}:{port}", token)
        background.runners = RunnerLoop(
            client,
            Path(settings.DATA_DIR) / "workspaces",
            concurrency=runner_count,
            labels=EMBEDDED_LABELS,
        )
        background.threads += background.runners.start()
    return background
