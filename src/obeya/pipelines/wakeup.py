"""Wakes runners waiting in this process when a job is queued (others poll the database)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import transaction

_queued = threading.Condition()
# Set when the server shuts down: long-polls answer at once instead of holding it open.
closing = threading.Event()
_on_close: list[Callable[[], None]] = []


def notify() -> None:
    """Wake every waiting long-poll in this process now."""
    with _queued:
        _queued.notify_all()


def job_queued() -> None:
    """Call inside the transaction that queued a job; waiters wake once it commits."""
    transaction.on_commit(notify)


def wait(timeout_s: float) -> None:
    with _queued:
        _queued.wait(timeout_s)


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
