"""How soon an idle runner picks up a queued job (queued → running).

Thirty single-job runs, one at a time, each started while the runner waits in its claim
long-poll: once for an embedded runner of `obeya serve` (OBEYA_RUNNERS=1), once for a
remote `obeya runner` process on loopback (serve with OBEYA_RUNNERS=0). Pickup is the
job's started_at - queued_at, as the API reports them (millisecond resolution).
"""

from __future__ import annotations

import time

from bench.pipelines_overhead import (
    Stack,
    await_runner,
    finished_run,
    pipeline_stack,
    remote_runner,
    seconds,
    start_run,
)
from bench.timing import summary_ms

SPEC = 'stages: [build]\njobs:\n  one:\n    stage: build\n    script: ["true"]\n'
SAMPLES = 30
IDLE_S = 0.3  # long enough after the last job for the runner to be back in its long-poll
BUDGET_S = 90.0


def _pickups(stack: Stack) -> list[float]:
    finished_run(stack, start_run(stack))  # warm-up: mirror, imports, connections
    pickups: list[float] = []
    deadline = time.monotonic() + BUDGET_S
    while len(pickups) < SAMPLES and time.monotonic() < deadline:
        time.sleep(IDLE_S)
        job = finished_run(stack, start_run(stack), poll_s=0.05)["jobs"][0]
        pickups.append(seconds(job["queued_at"], job["started_at"]))
    return pickups


def _figures(pickups: list[float], target_ms: float) -> dict[str, object]:
    summary = summary_ms(pickups)
    return {**summary, "target_p50_ms": target_ms, "target_met": summary["p50_ms"] <= target_ms}


def run() -> dict[str, object]:
    with pipeline_stack(SPEC, embedded_runners=1) as stack:
        embedded = _pickups(stack)
    with pipeline_stack(SPEC, embedded_runners=0) as stack, remote_runner(stack, "remote"):
        await_runner(stack, "remote")
        remote = _pickups(stack)
    return {
        "database": "sqlite",
        "embedded_runner": _figures(embedded, 50),
        "remote_runner_loopback": _figures(remote, 100),
    }
