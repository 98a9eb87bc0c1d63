"""Connections shared out over the processes of `obeya serve`: a process holding more
connections than another leaves a new one to it (for a while), counted in shared memory."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from obeya.cli import web_workers
from obeya.cli.web_workers import GONE, ConnectionCounts, FairListener, HeldConnection


@pytest.fixture
def counts() -> ConnectionCounts:
    made = ConnectionCounts.create(2)
    # Obeya serves from Linux, which has memfd_create: counting must work here.
    assert made is not None, "os.memfd_create is missing: connections would not be counted"
    return made


@pytest.fixture
def two(counts: ConnectionCounts) -> Iterator[tuple[FairListener, FairListener, int]]:
    """Two processes' listeners on one socket (the second on a copy of its descriptor, as a
    web worker inherits it), and its port."""
    first = web_workers.listen("127.0.0.1", 0)
    second = FairListener(fileno=os.dup(first.fileno()))
    first.share(counts, 0)
    second.share(ConnectionCounts(counts.fd, 2), 1)
    with first, second:
        yield first, second, first.getsockname()[1]


def _connect(port: int, stack: ExitStack) -> None:
    stack.enter_context(socket.create_connection(("127.0.0.1", port)))
    time.sleep(0.05)  # the connection is waiting to be accepted


def _accept(listener: FairListener) -> HeldConnection:
    listener._took_one = False  # a new turn of its event loop
    connection, _ = listener.accept()
    assert isinstance(connection, HeldConnection)
    return connection


def test_counts_are_shared_and_kept_per_process(counts: ConnectionCounts) -> None:
    other = ConnectionCounts(counts.fd, 2)  # as a web worker maps them
    counts.add(0, 3)
    other.add(1, 1)
    assert (other.held(0), counts.held(1)) == (3, 1)
    assert counts.fewest_elsewhere(0) == 1 and counts.fewest_elsewhere(1) == 3
    counts.set(1, GONE)  # a worker that exited: nothing is left to it
    assert counts.fewest_elsewhere(0) == GONE


def test_a_process_holding_more_leaves_a_new_connection_to_the_other(two) -> None:
    first, second, port = two
    with ExitStack() as stack:
        _connect(port, stack)
        held = stack.enter_context(_accept(first))  # both hold none: the first takes it
        _connect(port, stack)
        first._took_one = False
        with pytest.raises(BlockingIOError):
            first.accept()  # it holds one, the other none
        stack.enter_context(_accept(second))
        assert (first._counts.held(0), second._counts.held(1)) == (1, 1)  # type: ignore[union-attr]
        held.close()
        held.close()  # closed twice, counted once
        assert first._counts.held(0) == 0  # type: ignore[union-attr]


def test_a_connection_left_too_long_is_taken_after_all(two, monkeypatch) -> None:
    first, _, port = two  # the other never asks
    monkeypatch.setattr(web_workers, "LEAVE_S", 0.05)
    with ExitStack() as stack:
        _connect(port, stack)
        stack.enter_context(_accept(first))
        _connect(port, stack)
        began = time.monotonic()
        while True:  # as the event loop asks, again and again, while it is waiting
            first._took_one = False
            try:
                stack.enter_context(first.accept()[0])
                break
            except BlockingIOError:
                assert time.monotonic() - began < 5
                time.sleep(0.001)
        assert time.monotonic() - began >= 0.05  # the other had its chance first
        assert first._counts.held(0) == 2  # type: ignore[union-attr]


def test_one_process_alone_takes_every_connection() -> None:
    alone = web_workers.listen("127.0.0.1", 0)
    with alone, ExitStack() as stack:
        for _ in range(3):
            _connect(alone.getsockname()[1], stack)
            alone._took_one = False
            connection, _ = alone.accept()
            assert not isinstance(connection, HeldConnection)
            stack.enter_context(connection)
