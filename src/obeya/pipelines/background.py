"""What `obeya serve` runs beside the web: the lease reaper, and the embedded runners.

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

from obeya.pipelines import leases
from obeya.runner.client import ServerClient
from obeya.runner.main import RunnerLoop

log = logging.getLogger("obeya.pipelines")
REAP_INTERVAL_S = 5.0
EMBEDDED_LABELS = ["embedded"]


@dataclass
class Background:
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    runners: RunnerLoop | None = None

    def shutdown(self) -> None:
        self.stop.set()
        if self.runners is not None:
            self.runners.stop.set()


def _reaper(stop: threading.Event) -> None:
    while not stop.wait(REAP_INTERVAL_S):
        try:
            close_old_connections()
            reaped = leases.reap()
            if reaped:
                log.warning("reaper: %s job(s) lost their runner", reaped)
        except Exception:  # the reaper must outlive a failing tick
            log.exception("reaper tick failed")
        finally:
            close_old_connections()


def start(host: str, port: int, runner_count: int) -> Background:
    background = Background()
    reaper = threading.Thread(target=_reaper, args=(background.stop,), name="reaper", daemon=True)
    reaper.start()
    background.threads.append(reaper)
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
