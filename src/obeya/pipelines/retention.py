"""What the periodic sweep of `obeya serve` removes, and what it never removes.

- **Bundles** (``DATA_DIR/bundles/run-N.bundle``, a run's commit for runners to fetch):
  once the run has no job left that will run by itself and finished over an hour ago.
  A job of that run retried later gets its bundle made again.
- **Pins** (``refs/obeya/runs/N`` in a service's mirror, which keep a run's commit even
  after a force-push): once the run finished more than `PIN_RETENTION` ago and has no
  job that may still run (manual jobs included). Without its pin, a commit no branch or
  tag holds any more may later be pruned from the mirror; the run's jobs can then not
  run again.
- **Artifacts** past their expiry, and their blobs once no artifact needs them (see
  `artifacts.expire`); blobs no artifact points at and abandoned uploads after a day.

Nothing a queued or running job needs is removed: the jobs of a run are looked at in
the database each time, and a bundle or pin removed just as a person retries a job is
made again when its runner asks for the source.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings

from obeya.core.actors import Actor, system_actor
from obeya.pipelines import artifacts, git
from obeya.pipelines.models import Job, Run

BUNDLE_GRACE = timedelta(hours=1)
PIN_RETENTION = timedelta(days=30)
# Jobs that will run without anyone acting; with "manual", jobs that may still run.
WILL_RUN = ("created", "queued", "running", "waiting_approval")
MAY_RUN = (*WILL_RUN, "manual")
_BUNDLE = re.compile(r"run-(\d+)\.bundle")
_BATCH = 500


def sweep(*, clock: Actor | None = None) -> dict[str, int]:
    """One sweep; how many of each thing it removed."""
    actor = clock or system_actor()
    now = actor.now()
    return {
        "bundles": sweep_bundles(now),
        "pins": sweep_pins(now),
        "expired artifacts": artifacts.expire(clock=actor),
        "orphan blobs": artifacts.remove_orphans(clock=actor),
    }


def sweep_bundles(now: datetime) -> int:
    folder = Path(settings.DATA_DIR) / "bundles"
    if not folder.is_dir():
        return 0
    found: dict[int, Path] = {}
    stale_before = (now - BUNDLE_GRACE).timestamp()
    removed = 0
    for entry in os.scandir(folder):
        match = _BUNDLE.fullmatch(entry.name)
        if match:
            found[int(match[1])] = Path(entry.path)
        elif entry.name.endswith(".tmp") and entry.stat().st_mtime < stale_before:
            Path(entry.path).unlink(missing_ok=True)  # left by a crash mid-write
            removed += 1
    keep = _runs_to_keep(found, WILL_RUN, now - BUNDLE_GRACE)
    for run_id, path in found.items():
        if run_id in keep or path.stat().st_mtime >= stale_before:
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def sweep_pins(now: datetime) -> int:
    root = Path(settings.DATA_DIR) / "git"
    if not root.is_dir():
        return 0
    removed = 0
    for entry in os.scandir(root):
        if not (entry.name.endswith(".git") and entry.is_dir(follow_symlinks=False)):
            continue
        mirror = Path(entry.path)
        pinned = git.pinned_runs(mirror)
        # A pin whose run is not in the database is left alone: the run may be one
        # being created right now (it pins its commit before its row is committed).
        known = {
            run_id
            for batch in _batches(sorted(pinned))
            for run_id in Run.objects.filter(pk__in=batch).values_list("pk", flat=True)
        }
        keep = _runs_to_keep(known, MAY_RUN, now - PIN_RETENTION)
        old = sorted(known - keep)
        git.unpin(mirror, old)
        removed += len(old)
    return removed


def _runs_to_keep(run_ids: Iterable[int], busy: tuple[str, ...], finished_by: datetime) -> set[int]:
    """Of ``run_ids``, the runs with a job in a ``busy`` state or not finished by then.

    Ids without a run (its service was deleted) are not kept.
    """
    keep: set[int] = set()
    for batch in _batches(sorted(run_ids)):
        keep |= set(
            Job.objects.filter(run_id__in=batch, status__in=busy).values_list("run_id", flat=True)
        )
        for run_id, finished_at in Run.objects.filter(pk__in=batch).values_list(
            "pk", "finished_at"
        ):
            if finished_at is None or finished_at >= finished_by:
                keep.add(run_id)
    return keep


def _batches(items: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]
