"""A service's flow metrics: from the stored flow when it can answer, else from the log."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from obeya.board import flow, flow_store
from obeya.board import services as board
from obeya.catalog import services as catalog


def board_columns(slug: str) -> list[flow.BoardColumn]:
    """The columns of the service's board in order, with their flags (NotFound if no such)."""
    return [
        flow.BoardColumn(column.name, column.starts_work, column.is_done)
        for column in board.columns_of(slug)
    ]


def service_flow(slug: str, *, days: int, now: datetime | None = None) -> flow.FlowMetrics:
    """Every flow metric of a service's board over the last ``days`` days, in local days.

    The stored flow answers whenever its days are in this time zone and nothing folded
    into it is later than ``now``; otherwise (a past ``now``) the log is replayed.
    """
    service = catalog.get_service(slug)
    columns = board_columns(slug)
    window = flow.Window(days, now or timezone.now(), timezone.get_default_timezone())
    replayed = flow_store.stored_replay(service, columns, window)
    if replayed is None:
        replayed = flow.replay(flow_store.story_events(slug, until=window.now), columns, window)
    return flow.metrics_of(replayed, columns, window)
