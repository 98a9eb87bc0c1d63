"""Kept threads: a job's helpers reuse threads instead of starting new ones."""

from __future__ import annotations

import threading

from obeya.runner import threads


def test_a_finished_task_leaves_its_thread_for_the_next():
    seen: list[int] = []
    first = threads.spawn(lambda: seen.append(threading.get_ident()), "first")
    first.join(5)
    assert not first.is_alive()
    # The thread goes back to the idle list just after the task is marked done.
    for _ in range(100):
        second = threads.spawn(lambda: seen.append(threading.get_ident()), "second")
        second.join(5)
        if seen[-1] == seen[0]:
            break
    assert seen[-1] == seen[0]


def test_tasks_at_the_same_time_get_threads_of_their_own():
    release = threading.Event()
    started = threading.Barrier(3, timeout=5)

    def hold() -> None:
        started.wait()
        release.wait(5)

    tasks = [threads.spawn(hold, f"hold-{i}") for i in range(2)]
    started.wait()  # both run at once: neither waits behind the other
    release.set()
    for task in tasks:
        task.join(5)
        assert not task.is_alive()


def test_a_failing_task_does_not_stop_the_kept_threads():
    def fail() -> None:
        raise RuntimeError("boom")

    failed = threads.spawn(fail, "failing")
    failed.join(5)
    assert not failed.is_alive()
    after = threads.spawn(lambda: None, "after")
    after.join(5)
    assert not after.is_alive()


def test_a_later_task_starts_after_its_delay_unless_canceled():
    ran: list[str] = []
    done = threading.Event()
    kept = threads.later(0.05, lambda: (ran.append("kept"), done.set()), "kept")
    dropped = threads.later(0.05, lambda: ran.append("dropped"), "dropped")
    assert dropped.cancel()
    assert ran == []  # not before its time
    assert done.wait(5)
    assert not kept.cancel()  # too late: it started
    assert ran == ["kept"]


def test_a_later_task_started_early_runs_once():
    ran: list[int] = []
    twice = threading.Event()
    task = threads.later(0.05, lambda: (ran.append(1), twice.set()), "early")
    assert task.start_now()
    assert not task.start_now()
    assert twice.wait(5)
    # Its time comes and goes: the clock does not start it again.
    assert threads.later(0.1, lambda: None, "after").cancel()
    threading.Event().wait(0.15)
    assert ran == [1]


def test_an_earlier_task_added_later_is_not_held_up_by_a_later_one():
    started = threading.Event()
    slow = threads.later(30, lambda: None, "slow")
    threads.later(0.01, started.set, "quick")
    assert started.wait(5)
    slow.cancel()
