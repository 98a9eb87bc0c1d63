"""Threads kept for reuse by the runner's per-job helpers.

Each job needs a few threads beside the one running it: the log shipper, the heartbeat,
the output reader, the checkout reset. Starting a thread costs far more than the
bookkeeping of a short job (the new thread has to get the interpreter lock before
`start` returns), so these run on threads that are kept after their task and given the
next one. A kept thread waits on its own queue and never ends; there are never more of
them than tasks ever ran at once. They are daemon threads: a process exits without
waiting for them, as it did for the per-job threads they replace.
"""

from __future__ import annotations

import logging
import queue
import threading
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
