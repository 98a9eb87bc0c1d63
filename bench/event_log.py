"""How fast the event log takes appends: one transaction per change, as services do it.

With SQLite in WAL and synchronous=FULL, every commit waits for fsync; this shows what
that costs per recorded change.
"""

from __future__ import annotations

import time

from django.db import transaction

from bench.database import migrated
from bench.timing import summary_ms
from obeya.core import events
from obeya.core.actors import Actor

COUNT = 2000


def run() -> dict[str, object]:
    vendor = migrated()
    actor = Actor(user=None, channel="system")
    durations = []
    started = time.perf_counter()
    for index in range(COUNT):
        begin = time.perf_counter()
        with transaction.atomic():
            events.record(actor, "bench.appended", f"bench:{index}", {"i": index})
        durations.append(time.perf_counter() - begin)
    elapsed = time.perf_counter() - started
    return {
        "database": vendor,
        "appends": COUNT,
        "appends_per_s": round(COUNT / elapsed),
        "commit": summary_ms(durations),
    }
