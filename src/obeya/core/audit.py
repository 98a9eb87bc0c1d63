"""Checking the audit trail: walk the event log's hash chain, oldest first.

One use case, reached from ``obeya audit verify`` (on the server machine) and
``GET /api/audit/verify`` (administrators). The rules are in ``obeya.core.chain``.
"""

from __future__ import annotations

from collections.abc import Mapping

from obeya.core import chain
from obeya.core.actors import Actor
from obeya.core.errors import PermissionDenied
from obeya.core.models import ApiToken, Event

BATCH = 2000  # events read per statement: memory stays flat however long the log


def _require_admin(actor: Actor) -> None:
    """Administrators, and the admin CLI on the server machine (no user)."""
    if actor.user is None:
        if actor.channel not in {"cli", "system"}:
            raise PermissionDenied("only an administrator may verify the audit log")
        return
    if not actor.is_admin:
        raise PermissionDenied("only an administrator may verify the audit log")
    if actor.token is not None and actor.token.scope != ApiToken.Scope.ADMIN:
        raise PermissionDenied("verifying the audit log needs a token with the admin scope")


def _links(after: int) -> list[chain.Link]:
    names = ("id", *chain.CONTENT, "prev_hash", "hash")
    found = Event.objects.filter(id__gt=after).order_by("id").values_list(*names)[:BATCH]
    links = []
    for row in found:
        content = dict(zip(chain.CONTENT, row[1:-2], strict=True))
        content["ip"] = content["ip"] or None
        links.append(chain.Link(id=row[0], content=content, prev_hash=row[-2], hash=row[-1]))
    return links


def verify(actor: Actor, *, expect: Mapping[int, str] | None = None) -> chain.Report:
    """Walk the whole log: every changed row, missing row and broken link, by event id.

    ``expect`` maps event ids to the hashes they had when someone noted them (anchors,
    e.g. the head a previous verify printed); a rewritten or removed anchor is a problem.
    Events appended while the walk runs are walked too.
    """
    _require_admin(actor)
    walk = chain.Walk(expect)
    after = 0
    while batch := _links(after):
        walk.feed(batch)
        after = batch[-1].id
    return walk.finish()
