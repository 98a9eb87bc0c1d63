"""Polling: start runs when a repository's branches move, for servers no webhook can reach.

Several `obeya serve` processes may poll at once. Each claims a due pipeline with a
conditional UPDATE on the ``last_polled_at`` it read; the one whose UPDATE touched the row
polls it, the others move on, so each repository is asked once per interval.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from obeya.core.actors import Actor, system_actor
from obeya.core.errors import ObeyaError
from obeya.pipelines import git, runs
from obeya.pipelines.models import Pipeline, Run

log = logging.getLogger("obeya.pipelines")


def is_due(pipeline: Pipeline, now: datetime) -> bool:
    if pipeline.poll_interval_s <= 0:
        return False
    last = pipeline.last_polled_at
    return last is None or last + timedelta(seconds=pipeline.poll_interval_s) <= now


def claim(pipeline: Pipeline, now: datetime) -> bool:
    """Take this interval's poll of ``pipeline``; False when another process took it first."""
    taken = Pipeline.objects.filter(pk=pipeline.pk, last_polled_at=pipeline.last_polled_at).update(
        last_polled_at=now
    )
    return taken == 1


def poll_due(now: datetime, actor: Actor | None = None) -> int:
    """Poll every pipeline whose interval has passed; how many this process polled.

    A failing remote is logged and asked again next interval; nothing here raises.
    """
    actor = actor or system_actor()
    polled = 0
    for pipeline in Pipeline.objects.filter(poll_interval_s__gt=0).select_related("service"):
        if not is_due(pipeline, now) or not claim(pipeline, now):
            continue
        polled += 1
        try:
            poll(actor, pipeline)
        except Exception:  # one broken pipeline must not stop the others
            log.exception("polling %s failed", pipeline.service.slug)
    return polled


def poll(actor: Actor, pipeline: Pipeline) -> list[Run]:
    """Ask the remote for its branch heads and start a run for each branch that moved.

    The first poll only learns the heads, except that the default branch runs when its head
    has no run yet, so turning polling on does not start a run for every branch.
    """
    slug, url = pipeline.service.slug, pipeline.service.repository_url
    if not url or url.startswith("-"):
        log.warning("polling %s: its repository URL %r cannot be polled: fix it", slug, url)
        return []
    try:
        heads = git.remote_heads(url)
    except git.GitError as error:
        log.warning("polling %s: %s; asking again in %s s", slug, error, pipeline.poll_interval_s)
        return []
    pipeline.refresh_from_db(fields=["known_heads", "default_branch"])
    known: dict[str, str] = dict(pipeline.known_heads)
    first = not known
    seen: dict[str, str] = {}
    started: list[Run] = []
    for branch, sha in sorted(heads.items()):
        skip = known.get(branch) == sha or (first and branch != pipeline.default_branch)
        if skip or _latest_sha(pipeline, branch) == sha:  # e.g. a webhook ran it already
            seen[branch] = sha
            continue
        try:
            started.append(runs.create_run(actor, slug, branch, trigger="poll"))
        except runs.NothingToRun:
            seen[branch] = sha  # obeya.yml's rules leave this branch out: nothing to retry
            continue
        except ObeyaError as error:
            log.warning("polling %s: no run for %s at %s: %s", slug, branch, sha[:12], error)
            if branch in known:
                seen[branch] = known[branch]  # still "moved" next time, so it is retried
            continue
        seen[branch] = sha
    # update(), not save(): settings changed meanwhile (interval, secret) must survive.
    Pipeline.objects.filter(pk=pipeline.pk).update(known_heads=seen)
    return started


def _latest_sha(pipeline: Pipeline, branch: str) -> str | None:
    runs_of_branch = Run.objects.filter(service_id=pipeline.service_id, branch=branch)
    return runs_of_branch.order_by("-id").values_list("sha", flat=True).first()
