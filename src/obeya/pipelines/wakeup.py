"""Wakes runners waiting for a job when one is queued.

Within a process a condition wakes them at once. `obeya serve` answers from several
processes (its web workers), and a remote runner's long-poll may wait in any of them for
a job queued in another: the processes share a counter (`share`), which `notify` moves
and a waiting long-poll looks at every 10 ms. Without it, a waiter in another process
found the job at its next look at the database, up to half a second later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db import transaction

_queued = threading.Condition()
# Set when the server shuts down: long-polls answer at once instead of holding it open.
closing = threading.Event()
_on_close: list[Callable[[], None]] = []
# One number in memory the server's processes share (a memoryview of it), or None.
_shared: memoryview | None = None
SHARED_LOOK_S = 0.01


def share(counter: memoryview) -> None:
    """Wake waiters in the processes that share ``counter`` (one 64-bit number) too."""
    global _shared
    _shared = counter


def notify() -> None:
    """Wake every waiting long-poll in this process now, and in the processes sharing
    the counter within 10 ms."""
    if _shared is not None:
        # Two processes adding at once may lose one addition; the number moves all the same.
        _shared[0] += 1
    with _queued:
        _queued.notify_all()


def job_queued() -> None:
    """Call inside the transaction that queued a job; waiters wake once it commits."""
    transaction.on_commit(notify)


def wait(timeout_s: float) -> None:
    """Up to ``timeout_s``; less when a job is queued here or in a process sharing the
    counter."""
    shared = _shared
    if shared is None:
        with _queued:
            _queued.wait(timeout_s)
        return
    seen = shared[0]
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        with _queued:
            if _queued.wait(min(SHARED_LOOK_S, left)):
                return
        if shared[0] != seen:
            return


def on_close(callback: Callable[[], None]) -> None:
    """Have ``callback`` run when the server starts shutting down, before it stops serving.

    `obeya serve` calls `close` from its signal handler; the server then exits on the
    signal without unwinding, so what must happen before the end happens here.
    """
    _on_close.append(callback)


def close() -> None:
    closing.set()
    notify()
    for callback in list(_on_close):
        callback()
