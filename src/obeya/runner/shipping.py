"""What keeps a running job connected to its server: the log shipper and the heartbeat.

The shipper masks the job's output and sends it by byte offset at least every 250 ms;
when the job ends, the last bytes travel with the job's result (one call, not two). The
heartbeat extends the lease and hears about cancels.
"""

from __future__ import annotations

import logging
import threading

import httpx

from obeya.runner import threads
from obeya.runner.client import LeaseLost, OffsetMismatch, ProtocolError, ServerClient
from obeya.runner.masking import Masker

log = logging.getLogger("obeya.runner")

SHIP_INTERVAL_S = 0.25
MAX_CHUNK = 512 * 1024
MAX_BUFFER = 8 * 1024 * 1024
# At the end of a job, at most this much is left for the result call to carry.
MAX_TAIL = 64 * 1024


class LogShipper:
    """Masks output and sends it to the server at least every 250 ms, by byte offset.

    The buffer is bounded: when the server is slower than the job's output, the job's
    writes wait, which slows the job rather than filling the runner's memory. Text the
    masker holds back (an unfinished line) is released at each tick unless it could be
    the start of a secret, so a progress bar or a prompt shows while the job waits.
    """

    def __init__(
        self,
        client: ServerClient,
        job_id: int,
        lease: str,
        masker: Masker,
        on_lost: threading.Event,
    ) -> None:
        self._client, self._job_id, self._lease = client, job_id, lease
        self._masker, self._lost = masker, on_lost
        self._buffer = bytearray()
        self._sent = 0
        self._at_line_start = True
        self._cond = threading.Condition()
        self._mask_lock = threading.Lock()  # the masker is fed and released from two threads
        self._closing = False
        self._busy = False  # the loop is between waits: masking or sending
        # The shipping thread starts once the job has run a quarter second, or as soon
        # as a full chunk waits; a job done before then sends its whole log with its
        # result and never needs it.
        self._thread = threads.later(SHIP_INTERVAL_S, self._loop, f"log-{job_id}")
        self._loop_done = threading.Event()

    def write(self, chunk: bytes) -> None:
        if chunk:
            self._at_line_start = chunk.endswith(b"\n")
        with self._mask_lock:
            masked = self._masker.feed(chunk)
        self._add(masked)

    def note(self, text: str) -> None:
        """A line from the runner itself (not the job), in the same log."""
        start = "" if self._at_line_start else "\n"
        self.write(f"{start}[obeya-runner] {text}\n".encode())

    def _add(self, masked: bytes) -> None:
        if not masked:
            return
        with self._cond:
            while len(self._buffer) > MAX_BUFFER and not self._lost.is_set():
                self._cond.wait(0.5)
            self._buffer += masked
            full = len(self._buffer) >= MAX_CHUNK
            if full:
                self._cond.notify_all()  # a full chunk is waiting: ship it now
        if full:
            self._thread.start_now()

    def _send_some(self) -> bool:
        with self._cond:
            data = bytes(self._buffer[:MAX_CHUNK])
        if not data:
            return False
        try:
            acknowledged = self._client.append_log(self._job_id, self._lease, self._sent, data)
        except OffsetMismatch as mismatch:
            acknowledged = mismatch.expected if mismatch.expected is not None else self._sent
        except LeaseLost:
            self._lost.set()
            return False
        except (ProtocolError, httpx.HTTPError) as error:
            log.warning("job %s: log upload failed, will retry: %s", self._job_id, error)
            return False
        with self._cond:
            del self._buffer[: max(0, acknowledged - self._sent)]
            self._sent = max(self._sent, acknowledged)
            self._cond.notify_all()
        return True

    def _tail_left(self) -> bool:
        """Closing, with little enough left for the result to carry (hold ``_cond``)."""
        return self._closing and len(self._buffer) <= MAX_TAIL

    def _loop(self) -> None:
        try:
            self._ship()
        finally:
            self._loop_done.set()

    def _ship(self) -> None:
        waited = True  # started an interval into the job, or for a full chunk: send now
        while not self._lost.is_set():
            with self._cond:
                self._busy = False
                if not waited and not self._closing and len(self._buffer) < MAX_CHUNK:
                    self._cond.wait(SHIP_INTERVAL_S)
                waited = False
                if self._tail_left():
                    return  # the rest goes with the result
                closing = self._closing
                self._busy = True
            if not closing:
                with self._mask_lock:
                    released = self._masker.release()
                self._add(released)
            # Send back to back while full chunks wait (fast output), otherwise once per
            # interval (at least every 250 ms while the job runs).
            while sent := self._send_some():
                with self._cond:
                    if self._tail_left():
                        return
                    if not self._closing and len(self._buffer) < MAX_CHUNK:
                        break
                if self._client.chunk_pause_s:
                    self._lost.wait(self._client.chunk_pause_s)
            if not sent and closing:
                self._lost.wait(SHIP_INTERVAL_S)  # the server is struggling: not a busy loop

    def finish(self, timeout_s: float = 60.0) -> tuple[int, bytes]:
        """End the log: ship all but a short tail, and return (its offset, the tail).

        The caller sends the tail with the job's result (`ServerClient.complete`).
        """
        with self._mask_lock:
            tail = self._masker.flush()
        with self._cond:
            self._buffer += tail
            self._closing = True
            if self._tail_left() and self._thread.cancel():
                return self._sent, bytes(self._buffer)  # never started: nothing to wait for
            self._cond.notify_all()
            if not self._busy and self._tail_left():
                # The loop waits (or has not started): it will find the tail left for the
                # result and end without sending; no need to wait for it to wake.
                return self._sent, bytes(self._buffer)
        self._thread.start_now()  # more than the result can carry is left: ship it
        self._loop_done.wait(timeout_s)
        with self._cond:
            return self._sent, bytes(self._buffer)


class Heartbeat:
    """Keeps the lease alive; sets ``cancel`` when the server asks, ``lost`` if it is gone."""

    def __init__(
        self,
        client: ServerClient,
        job_id: int,
        lease: str,
        lease_seconds: float,
        cancel: threading.Event,
        lost: threading.Event,
    ) -> None:
        self._args = (client, job_id, lease)
        self._interval = max(1.0, min(10.0, lease_seconds / 3))
        self._cancel, self._lost = cancel, lost
        self.cancel_requested = False  # the server asked (a person canceled the job)
        self._stop = threading.Event()
        # The first beat is an interval away; its thread starts when the shipper's would.
        self._start = threads.later(SHIP_INTERVAL_S, self._loop, f"beat-{job_id}")

    def _loop(self) -> None:
        client, job_id, lease = self._args
        while not self._stop.wait(self._interval):
            try:
                if client.heartbeat(job_id, lease):
                    self.cancel_requested = True
                    self._cancel.set()
            except LeaseLost:
                if not self._stop.is_set():  # not just the result landing first
                    self._lost.set()
                    self._cancel.set()
                return
            except (ProtocolError, httpx.HTTPError) as error:
                log.warning("job %s: heartbeat failed: %s", job_id, error)

    def stop(self) -> None:
        """No more heartbeats. Not waited for: a beat already on its way may come back
        refused (the result landed first), which it then ignores."""
        self._stop.set()
        self._start.cancel()
