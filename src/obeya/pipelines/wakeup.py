"""Wakes runners waiting in this process when a job is queued (others poll the database)."""

from __future__ import annotations

import threading

from django.db import transaction

_queued = threading.Condition()
# Set when the server shuts down: long-polls answer at once instead of holding it open.
closing = threading.Event()


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


def close() -> None:
    closing.set()
    notify()
