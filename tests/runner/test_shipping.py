"""The log shipper: a short log travels whole with the result; a long one is shipped by
offset, all but its last bytes; a log line is never lost or sent twice."""

from __future__ import annotations

import threading
import time

from obeya.runner import shipping
from obeya.runner.masking import Masker
from obeya.runner.shipping import LogShipper


class FakeServer:
    """Stands in for ServerClient.append_log: keeps what it was sent, by offset."""

    chunk_pause_s = 0.0

    def __init__(self) -> None:
        self.log = bytearray()
        self.calls = 0

    def append_log(self, job_id: int, lease: str, offset: int, data: bytes) -> int:
        self.calls += 1
        assert offset <= len(self.log)
        self.log[offset:] = data
        return len(self.log)


def _shipper(server: FakeServer, secrets: tuple[str, ...] = ()) -> LogShipper:
    return LogShipper(server, 1, "lease", Masker(secrets), threading.Event())  # type: ignore[arg-type]


def test_a_short_log_goes_whole_with_the_result():
    server = FakeServer()
    shipper = _shipper(server)
    shipper.note("job starts")
    shipper.write(b"$ true\n")
    offset, tail = shipper.finish()
    assert (offset, server.calls) == (0, 0)
    assert tail == b"[obeya-runner] job starts\n$ true\n"


def test_finishing_at_once_after_starting_loses_nothing():
    for _ in range(200):  # the loop may not have started yet, or be about to wait
        server = FakeServer()
        shipper = _shipper(server)
        shipper.write(b"x" * 100)
        offset, tail = shipper.finish()
        assert bytes(server.log[:offset]) + tail == b"x" * 100


def test_a_long_log_is_shipped_by_offset_and_its_tail_travels_with_the_result():
    server = FakeServer()
    shipper = _shipper(server, ("s3cr3t-value",))
    line = b"a line with s3cr3t-value in it\n"
    for _ in range(20_000):  # about 620 KB: more than a chunk and far more than a tail
        shipper.write(line)
    offset, tail = shipper.finish()
    assert offset > 0 and len(tail) <= shipping.MAX_TAIL
    whole = bytes(server.log[:offset]) + tail
    assert whole == b"a line with [MASKED] in it\n" * 20_000


def test_output_is_shipped_while_the_job_still_runs():
    server = FakeServer()
    shipper = _shipper(server)
    shipper.write(b"progress 1\n")
    deadline = time.monotonic() + 5
    while server.log != b"progress 1\n":
        assert time.monotonic() < deadline, "nothing shipped within 5 s"
        time.sleep(0.02)
    offset, tail = shipper.finish()
    assert (offset, tail) == (len(b"progress 1\n"), b"")
