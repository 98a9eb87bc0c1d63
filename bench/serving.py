"""A real `obeya serve` for benchmarks: its own environment, a free port, stopped cleanly,
and a probe of its /api/health while it is loaded.

Shared by the pipeline, board and operations benchmarks. (tests/processes.py keeps its own
copy: the test suite does not import the benchmarks.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from bench.timing import summary_ms

OBEYA = str(Path(sys.executable).with_name("obeya"))


def child_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """An environment for a child `obeya`: its own data dir and config, embedded SQLite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBEYA_")}
    env.update(
        OBEYA_DATA_DIR=str(data_dir),
        XDG_CONFIG_HOME=str(data_dir / "config"),
        PYTHONWARNINGS="ignore",
        **extra,
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """SIGTERM, ten seconds to drain, then SIGKILL (the whole group when it has its own)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if group:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def serve(
    env: dict[str, str], log: Path, *extra_args: str, timeout_s: float = 60
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`obeya serve` on a free port with ``env``; yields its URL once /api/health answers."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [OBEYA, "serve", "--host", "127.0.0.1", "--port", str(port), *extra_args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a SIGKILL of its group takes its git children too
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"obeya serve exited {process.returncode}: {log.read_text()}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"obeya serve did not answer in {timeout_s:.0f} s: {log.read_text()}"
                )
            time.sleep(0.1)
        yield url, process
    finally:
        stop(process, group=True)


class HealthProbe(threading.Thread):
    """GET /api/health every ``every_s`` (or at once when the last answer came later)."""

    def __init__(self, url: str, every_s: float) -> None:
        super().__init__(name="health-probe", daemon=True)
        self._url = url
        self._every_s = every_s
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures = 0

    def run(self) -> None:
        with httpx.Client(base_url=self._url, timeout=30) as client:
            due = time.monotonic()
            while not self.stop.is_set():
                begin = time.perf_counter()
                try:
                    client.get("/api/health").raise_for_status()
                    self.latencies.append(time.perf_counter() - begin)
                except httpx.HTTPError:
                    self.failures += 1
                due += self._every_s
                self.stop.wait(max(0.0, due - time.monotonic()))

    def figures(self) -> dict[str, object]:
        if not self.latencies:
            return {"n": 0, "failures": self.failures}
        return {**summary_ms(self.latencies), "failures": self.failures}


@contextmanager
def probing(url: str, every_s: float) -> Iterator[HealthProbe]:
    """A HealthProbe of the server at ``url`` for the duration of the block."""
    probe = HealthProbe(url, every_s)
    probe.start()
    try:
        yield probe
    finally:
        probe.stop.set()
        probe.join(35)
