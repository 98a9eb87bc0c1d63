"""Threads kept for reuse by the runner's per-job helpers, and helpers started late.

Each job needs a few threads beside the one running it: the log shipper, the heartbeat,
the output reader, the checkout reset. Starting a thread costs far more than the
bookkeeping of a short job (the new thread has to get the interpreter lock before
`start` returns), so these run on threads that are kept after their task and given the
next one. A kept thread waits on its own queue and never ends; there are never more of
them than tasks ever ran at once. They are daemon threads: a process exits without
waiting for them, as it did for the per-job threads they replace.

The shipper and the heartbeat have nothing to do in a job's first quarter second, and
most short jobs are over by then: `later` starts them only once that time has passed.
One clock thread keeps the start times; a job that ends first cancels its start, and no
thread wakes up for it (each wake-up of a helper made the job's own thread wait for the
interpreter lock, a dozen times a job).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger("obeya.runner")
_lock = threading.Lock()
_idle: list[_Kept] = []


class Task:
    """One function running on a kept thread; joined like a thread."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._target = target
        self.name = name
        self._done = threading.Event()

    def join(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def is_alive(self) -> bool:
        return not self._done.is_set()

    def _run(self) -> None:
        try:
            self._target()
        finally:
            self._done.set()


class _Kept(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="obeya-runner-idle", daemon=True)
        self.tasks: queue.SimpleQueue[Task] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            task = self.tasks.get()
            self.name = task.name
            try:
                task._run()
            except Exception:  # as a thread of its own would, say so and go on
                log.exception("runner thread %s failed", task.name)
            self.name = "obeya-runner-idle"
            with _lock:
                _idle.append(self)


def spawn(target: Callable[[], None], name: str) -> Task:
    """Run ``target`` on a kept thread (a new one only when none is idle)."""
    task = Task(target, name)
    with _lock:
        kept = _idle.pop() if _idle else None
    if kept is None:
        kept = _Kept()
        kept.tasks.put(task)
        kept.start()
    else:
        kept.tasks.put(task)
    return task


class Later:
    """A task to start at a given time, unless canceled before."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._target, self.name = target, name
        self._lock = threading.Lock()
        self._state = "waiting"  # then "started" or "canceled"

    def start_now(self) -> bool:
        """Start it at once, if it was neither started nor canceled; whether it was."""
        with self._lock:
            if self._state != "waiting":
                return False
            self._state = "started"
        spawn(self._target, self.name)
        return True

    def cancel(self) -> bool:
        """Never start it; whether it had not started yet."""
        with self._lock:
            if self._state != "waiting":
                return self._state == "canceled"
            self._state = "canceled"
            return True


# The clock looks at most this often: a task starts up to this late, and a stream of short
# jobs (each adding tasks it cancels soon after) wakes it this often, not once a job.
TICK_S = 0.05


class _Clock:
    """One thread that starts each `Later` when its time comes (up to `TICK_S` late)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, Later]] = []
        self._order = itertools.count()
        self._waiting_until: float | None = None  # None: no thread, or waiting for work
        self._thread: threading.Thread | None = None

    def add(self, delay_s: float, task: Later) -> None:
        at = time.monotonic() + delay_s
        with self._cond:
            heapq.heappush(self._due, (at, next(self._order), task))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="obeya-later", daemon=True)
                self._thread.start()
            elif self._waiting_until is None or at < self._waiting_until:
                self._cond.notify()  # it sleeps past this one: wake it to wait less

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if self._due and self._due[0][0] <= now:
                        break
                    self._waiting_until = self._due[0][0] if self._due else None
                    self._cond.wait(None if not self._due else self._due[0][0] - now)
                self._waiting_until = 0.0  # busy: a new task is looked at before sleeping
                ready = []
                while self._due and self._due[0][0] <= now:
                    ready.append(heapq.heappop(self._due)[2])
            for task in ready:
                try:
                    task.start_now()
                except Exception:  # the clock must go on for the other jobs
                    log.exception("runner thread %s could not start", task.name)
            time.sleep(TICK_S)


_clock = _Clock()


def later(delay_s: float, target: Callable[[], None], name: str) -> Later:
    """Run ``target`` on a kept thread ``delay_s`` from now, unless canceled before."""
    task = Later(target, name)
    _clock.add(delay_s, task)
    return task
