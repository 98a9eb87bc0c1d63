"""A service's metrics as files: ``weeks``, ``dora``, ``checks`` (flow and CI),
``value-stream`` and ``maturity``, each as CSV (one row per thing) or JSON (the same rows
with the window), over the same ``?window=`` as the Metrics tab.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse

from obeya.catalog import services as catalog
from obeya.core.errors import ObeyaError
from obeya.metrics import services
from obeya.metrics.views import METRICS, figure


def _rows(report: services.Report, name: str) -> list[dict[str, Any]]:
    if name == "weeks":
        return [services.plain(week) for week in report.weeks]
    if name == "dora":
        rows = []
        for metric in METRICS:
            number, before = getattr(report.dora, metric), getattr(report.previous, metric)
            trend = services.trend(metric, number.value, before.value)
            rows.append(
                {
                    "metric": metric,
                    "value": number.value,
                    "shown_as": figure(metric, number.value, number.band),
                    "band": number.band,
                    "previous": before.value,
                    "trend": trend.direction,
                    "better": trend.better,
                    "evidence": len(number.evidence),
                    "detail": services.plain(number.detail),
                }
            )
        return rows
    if name == "checks":
        groups = [("flow", c) for c in report.flow] + [("ci", c) for c in report.ci]
        return [{"group": group, **services.plain(check)} for group, check in groups]
    if name == "value-stream":
        stream = report.value_stream
        return [
            {
                "stage": s.name,
                "process_s": s.process_s,
                "wait_s": s.wait_s,
                "samples": s.samples,
                "biggest_wait": s.name == stream.biggest_wait,
            }
            for s in stream.stages
        ]
    return [
        {
            "area": area.id,
            "name": area.name,
            "level": area.level,
            "criterion_level": c.level,
            "criterion": c.text,
            "met": c.met,
            "evidence": services.plain(c.evidence),
            "next_step": area.next_step,
        }
        for area in report.maturity
        for c in area.criteria
    ]


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    key: json.dumps(value) if isinstance(value, dict | list) else value
                    for key, value in row.items()
                }
            )
    return out.getvalue()


def _window(report: services.Report) -> dict[str, Any]:
    return {"days": report.days, "start": report.start.isoformat(), "end": report.end.isoformat()}


@login_required
def download(request: HttpRequest, slug: str, name: str, fmt: str) -> HttpResponse:
    """``weeks``, ``dora``, ``checks``, ``value-stream`` or ``maturity`` as CSV or JSON."""
    try:
        catalog.get_service(slug)
        days = services.parse_window(request.GET.get("window"))
    except ObeyaError as error:
        return HttpResponse(error.message, status=error.status, content_type="text/plain")
    report = services.report(slug, days)
    rows = _rows(report, name)
    filename = f"{slug}-{name}-{days}d.{fmt}"
    if fmt == "csv":
        response = HttpResponse(_csv(rows), content_type="text/csv; charset=utf-8")
    else:
        body = {"service": slug, "window": _window(report), name: rows}
        if name == "value-stream":
            stream = services.plain(report.value_stream)
            body["totals"] = {k: v for k, v in stream.items() if k != "stages"}
        response = JsonResponse(body, json_dumps_params={"ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
