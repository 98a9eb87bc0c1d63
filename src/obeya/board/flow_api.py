"""Flow API: every flow metric of a service's board, as JSON or as one CSV table."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Field, Router, Schema
from ninja.responses import NinjaJSONEncoder

from obeya.board import flow, flow_queries
from obeya.core.errors import InvalidInput

router = Router(tags=["board"])

MAX_DAYS = 3650


class WindowOut(Schema):
    days: int
    first_day: date
    last_day: date
    start: datetime = Field(description="Midnight at the beginning of the first day.")
    end: datetime = Field(description="When the metrics were computed.")
    time_zone: str


class ColumnOut(Schema):
    name: str
    starts_work: bool
    is_done: bool


class StoryHoursOut(Schema):
    key: str
    hours: float
    done_at: datetime


class TimesOut(Schema):
    median_h: float | None
    p90_h: float | None = Field(description="Nearest rank: 90% of the stories took at most this.")
    items: list[StoryHoursOut]


class WeekOut(Schema):
    week: str = Field(description="ISO week, 2026-W05.")
    done: int


class DayColumnsOut(Schema):
    day: date
    columns: dict[str, int]


class AgingOut(Schema):
    key: str
    column: str
    age_h: float
    started: bool


class DayBandsOut(Schema):
    day: date
    bands: dict[str, int] = Field(description="Cards in the column or any later column.")


class FlowOut(Schema):
    window: WindowOut
    columns: list[ColumnOut]
    lead_time: TimesOut
    cycle_time: TimesOut
    throughput: list[WeekOut]
    wip: list[DayColumnsOut]
    aging: list[AgingOut]
    cfd: list[DayBandsOut]


def _times(times: flow.Times) -> dict[str, Any]:
    return {
        "median_h": times.median_h,
        "p90_h": times.p90_h,
        "items": [item._asdict() for item in times.items],
    }


def flow_body(metrics: flow.FlowMetrics) -> dict[str, Any]:
    """The JSON body of GET /api/services/{slug}/flow."""
    window = metrics.window
    return {
        "window": {
            "days": window.days,
            "first_day": window.first_day,
            "last_day": window.last_day,
            "start": window.start,
            "end": window.now,
            "time_zone": str(window.tz),
        },
        "columns": [
            {"name": c.name, "starts_work": c.starts_work, "is_done": c.is_done}
            for c in metrics.columns
        ],
        "lead_time": _times(metrics.lead_time),
        "cycle_time": _times(metrics.cycle_time),
        "throughput": [{"week": week, "done": done} for week, done in metrics.throughput],
        "wip": [{"day": day, "columns": counts} for day, counts in metrics.wip],
        "aging": [card._asdict() for card in metrics.aging],
        "cfd": [{"day": day, "bands": bands} for day, bands in metrics.cfd],
    }


def flow_json(metrics: flow.FlowMetrics) -> str:
    """The body of GET /api/services/{slug}/flow as JSON text, as the API's renderer writes
    it. ``flow_body`` already has the shape of ``FlowOut`` (tests hold it to the schema), so
    a year of numbers is not validated again on every request: that took ~70 ms."""
    return json.dumps(flow_body(metrics), cls=NinjaJSONEncoder)


def _cell(text: str) -> str:
    # A column name typed as =HYPERLINK(...) must stay text when the CSV opens in a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def flow_csv(metrics: flow.FlowMetrics) -> str:
    """Every metric as one long table: metric, period, key, column, value."""
    out = io.StringIO()
    rows = csv.writer(out, lineterminator="\n")
    rows.writerow(["metric", "period", "key", "column", "value"])
    for name, times in (("lead_time_h", metrics.lead_time), ("cycle_time_h", metrics.cycle_time)):
        for item in times.items:
            day = item.done_at.astimezone(metrics.window.tz).date()
            rows.writerow([name, day.isoformat(), item.key, "", item.hours])
    for week, done in metrics.throughput:
        rows.writerow(["throughput", week, "", "", done])
    for metric, series in (("wip", metrics.wip), ("cfd", metrics.cfd)):
        for day, counts in series:
            for column, count in counts.items():
                rows.writerow([metric, day.isoformat(), "", _cell(column), count])
    today = metrics.window.last_day.isoformat()
    for card in metrics.aging:
        rows.writerow(["aging_h", today, card.key, _cell(card.column), card.age_h])
    return out.getvalue()


@router.get(
    "/services/{slug}/flow",
    response=FlowOut,
    summary="Flow metrics of the service's board",
    description="Lead and cycle time, throughput per ISO week, WIP per column per day, "
    "aging WIP and cumulative flow over the last `days` days (today included). "
    "`format=csv` returns the same numbers as one CSV table.",
)
def service_flow(request: HttpRequest, slug: str, days: int = 90, format: str = "json") -> Any:
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(
            f"days must be from 1 to {MAX_DAYS} (ten years), not {days}: "
            "ask for ?days=90 for the last quarter",
            field="days",
        )
    if format not in ("json", "csv"):
        raise InvalidInput(f"format must be json or csv, not {format!r}", field="format")
    metrics = flow_queries.service_flow(slug, days=days)
    if format == "csv":
        response = HttpResponse(flow_csv(metrics), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{slug}-flow-{days}d.csv"'
        return response
    return HttpResponse(flow_json(metrics), content_type="application/json; charset=utf-8")
