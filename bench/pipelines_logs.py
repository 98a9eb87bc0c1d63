"""How a job that prints 100 MB fares: log throughput, memory, and whether the server
stays responsive while the log streams in.

One job prints 100 MB of 100-byte lines. Measured: the job's wall time (started →
finished, from the API), MB/s stored, the peak RSS (VmHWM) of the server and of the
runner, and the latency of GET /api/health sampled every 50 ms from another thread while
the job runs (and for two seconds before it, idle, to compare). The job runs three times
in a row, its samples pooled; the wall time is the median run's. Done twice: with an
embedded runner (server and runner are one process) and with a remote `obeya runner`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench.pipelines_overhead import (
    Stack,
    await_runner,
    finished_run,
    peak_rss_mb,
    pipeline_stack,
    remote_runner,
    seconds,
    start_run,
)
from bench.serving import probing

LOG_BYTES = 100_000_000
# 99 characters and a newline: 100-byte lines, LOG_BYTES in all. No `yes | head`: under
# pipefail the SIGPIPE of `yes` would fail the job.
SPEC = f"""\
stages: [build]
jobs:
  flood:
    stage: build
    script:
      - head -c {LOG_BYTES // 100 * 99} /dev/zero | tr '\\0' x | fold -w 99
"""
SAMPLE_EVERY_S = 0.05
# The job runs this many times in a row and the health samples of all runs are pooled:
# one run gives some 60 samples, whose p99 is simply the slowest.
FLOODS = 3
IDLE_SAMPLE_S = 2.0
RUN_TIMEOUT_S = 240.0
HEALTH_TARGET_P99_MS = 50


def _flood(stack: Stack, runner_pid: int | None) -> dict[str, object]:
    """Run the 100 MB job on ``stack``; runner_pid None: the server's embedded runner."""
    with probing(stack.url, SAMPLE_EVERY_S) as idle:
        time.sleep(IDLE_SAMPLE_S)
    rss: dict[str, Callable[[], float]] = {"server": lambda: peak_rss_mb(stack.server.pid)}
    if runner_pid is not None:
        rss["runner"] = lambda: peak_rss_mb(runner_pid)
    before = {name: read() for name, read in rss.items()}
    walls: list[float] = []
    with probing(stack.url, SAMPLE_EVERY_S) as busy:
        for _ in range(FLOODS):
            run = finished_run(stack, start_run(stack), timeout_s=RUN_TIMEOUT_S, poll_s=0.5)
            job = run["jobs"][0]
            walls.append(seconds(job["started_at"], job["finished_at"]))
    after = {name: read() for name, read in rss.items()}
    stored = stack.api.get(f"/jobs/{job['id']}").raise_for_status().json()["attempts"][-1]
    wall = statistics.median(walls)
    health = busy.figures()
    p99 = health.get("p99_ms")
    return {
        "floods": FLOODS,
        "job_wall_s": round(wall, 2),
        "job_wall_s_each": [round(each, 2) for each in walls],
        "log_bytes_stored": stored["log_size"],
        "stored_mb_per_s": round(stored["log_size"] / 1e6 / wall, 1),
        "peak_rss_mb_before": before,
        "peak_rss_mb_after": after,
        "health_idle": idle.figures(),
        "health_during_job": health,
        "health_p99_target_ms": HEALTH_TARGET_P99_MS,
        "health_target_met": p99 is not None and float(str(p99)) < HEALTH_TARGET_P99_MS,
    }


def run() -> dict[str, object]:
    with pipeline_stack(SPEC, embedded_runners=1) as stack:
        embedded = _flood(stack, None)
    with pipeline_stack(SPEC, embedded_runners=0) as stack, remote_runner(stack) as runner:
        await_runner(stack, "remote")
        remote = _flood(stack, runner.pid)
    return {
        "database": "sqlite",
        "log_bytes_printed": LOG_BYTES,
        "embedded_runner (server and runner in one process)": embedded,
        "remote_runner_loopback": remote,
    }
