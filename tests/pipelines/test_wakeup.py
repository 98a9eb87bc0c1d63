"""A runner's long-poll wakes when a job is queued in its process or in another one of
the server's (the web workers share a counter)."""

from __future__ import annotations

import mmap
import threading
import time

import pytest

from obeya.pipelines import wakeup


@pytest.fixture
def shared():
    memory = mmap.mmap(-1, 8)
    counter = memoryview(memory).cast("q")
    wakeup.share(counter[0:1])
    yield counter
    wakeup._shared = None


def _timed_wait(timeout_s: float) -> tuple[threading.Thread, list[float]]:
    took: list[float] = []

    def wait() -> None:
        begin = time.monotonic()
        wakeup.wait(timeout_s)
        took.append(time.monotonic() - begin)

    thread = threading.Thread(target=wait)
    thread.start()
    return thread, took


def test_a_job_queued_in_another_process_wakes_the_waiter(shared):
    thread, took = _timed_wait(10)
    time.sleep(0.05)
    shared[0] += 1  # what notify() does in another process of the server
    thread.join(5)
    assert took and took[0] < 5


def test_a_job_queued_here_wakes_the_waiter_and_moves_the_counter(shared):
    thread, took = _timed_wait(10)
    time.sleep(0.05)
    wakeup.notify()
    thread.join(5)
    assert took and took[0] < 5
    assert shared[0] == 1


def test_with_nothing_queued_the_wait_lasts_its_time(shared):
    thread, took = _timed_wait(0.2)
    thread.join(5)
    assert took and took[0] >= 0.2
