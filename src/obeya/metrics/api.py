"""Metrics API: a service's report over a window, the room's tiles, and DORA across every
service. The figures come from ``metrics/services.py``, as on the pages and in ``obeya``.

``window`` is a number of days or weeks (``30d``, ``12w``, ``90``), 1 to 365 days; a bad
one is a 400 naming the field ``window``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from obeya.metrics import services
from obeya.metrics.schemas import DoraAcrossOut, ReportOut, RoomOut

router = Router(tags=["metrics"])


@router.get(
    "/services/{slug}/metrics",
    response=ReportOut,
    summary="A service's DORA metrics, checks, value stream and maturity over a window",
)
def service_metrics(request: HttpRequest, slug: str, window: str = "30d") -> dict[str, Any]:
    days = services.parse_window(window)
    return services.report_dict(services.report(slug, days))


@router.get("/room", response=RoomOut, summary="Every live service's tile in the Obeya room")
def room(request: HttpRequest) -> dict[str, Any]:
    return {"services": services.tiles_dict(services.room())}


@router.get(
    "/metrics/dora",
    response=DoraAcrossOut,
    summary="The five DORA metrics over every live service together",
)
def dora_across(request: HttpRequest, window: str = "30d") -> dict[str, Any]:
    days = services.parse_window(window)
    span, measured = services.dora_across(days)
    return {"days": days, "start": span[0], "end": span[1], "dora": services.plain(measured)}
