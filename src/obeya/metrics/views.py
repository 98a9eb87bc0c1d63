"""A service's Metrics tab: DORA with the evidence behind each number, weekly charts, flow
and CI checks, the value stream drawn, maturity; and the words every metrics page uses for
its numbers (the room in ``room_views``, the files in ``download_views``).

Everything is read through ``obeya.metrics.services``; nothing here writes. Every figure is
shown in words as well as in colour, and "no data" is said, never drawn as a zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from obeya.catalog import services as catalog
from obeya.core.errors import InvalidInput, ObeyaError
from obeya.metrics import dora, services
from obeya.metrics.model import Check

# metric -> (name, what it counts); the order is the order on every page.
METRICS: dict[str, tuple[str, str]] = {
    "deployment_frequency": (
        "Deployment frequency",
        "successful production deployments, per week",
    ),
    "change_lead_time": ("Change lead time", "commit → running in production, median"),
    "change_fail_rate": ("Change fail rate", "production deployments that failed ÷ all"),
    "recovery_time": ("Recovery time", "failure detected → service restored, median"),
    "rework_rate": ("Rework rate", "deployments made during a production incident ÷ all"),
}
WINDOWS = ("7d", "30d", "90d")
RESULTS = {
    "pass": ("✓", "pass"),
    "warn": ("!", "warning"),
    "fail": ("✗", "fail"),
    "no data": ("-", "no data"),
}
DOWNLOADS = ("weeks", "dora", "checks", "value-stream", "maturity")


# ---- words for numbers -----------------------------------------------------------------------


def _short(value: float) -> str:
    return f"{round(value, 1):g}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def percent(share: float | None) -> str:
    """``0.25`` -> "25 %"; a small share keeps two digits ("0.0017 %"), never "0 %"."""
    if share is None:
        return "no data"
    value = share * 100
    return f"{value:.2g} %" if 0 < abs(value) < 1 else f"{_short(value)} %"


def span(seconds: float | None) -> str:
    """``5400`` -> "1.5 h"; ``None`` -> "no data"."""
    if seconds is None:
        return "no data"
    if seconds < 60:
        return f"{round(seconds)} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"{_short(seconds / 3600)} h"
    return f"{_short(seconds / 86400)} days"


def figure(metric: str, value: float | None, band: str = "") -> str:
    """A metric's value as people say it: "2 a week", "1.5 h", "12.5 %"; a window without
    production deployments has no data, never a rate of zero."""
    if value is None or band == "no data":
        return "no data"
    if metric == "deployment_frequency":
        return f"{_short(value * 7)} a week"
    if metric in {"change_fail_rate", "rework_rate"}:
        return percent(value)
    return span(value)


def trend_view(
    metric: str, trend: Mapping[str, Any], previous: float | None, band: str
) -> dict[str, str]:
    """An arrow and a word ("↑ better"), and what it is compared with."""
    direction = "none" if band == "no data" else str(trend.get("direction", "none"))
    arrow = {"up": "↑", "down": "↓", "flat": "→"}.get(direction, "·")
    if direction in {"up", "down"}:
        tone = "better" if trend.get("better") else "worse"
        words = tone
    else:
        tone = "same"
        words = "no data" if direction == "none" else str(trend.get("words") or "no data")
    if metric == "deployment_frequency" and previous == 0:
        before = "before: none"
    else:
        before = f"before: {figure(metric, previous)}" if previous is not None else ""
    return {"arrow": arrow, "words": words, "tone": tone, "before": before}


def _link(slug: str, what: str, ident: Any) -> str:
    base = f"/services/{slug}/"
    if what == "deployment" and isinstance(ident, int):
        return f"{base}deployments/{ident}/"
    if what == "incident" and isinstance(ident, int):
        return f"{base}operations/incidents/{ident}/"
    if what == "run" and isinstance(ident, int):
        return f"{base}runs/{ident}/"
    if what in {"story", "card"} and ident:
        return f"{base}backlog/{ident}/"
    return ""


def _words(value: Any) -> str:
    if isinstance(value, float):
        return _short(value)
    if isinstance(value, list | tuple):
        return ", ".join(_words(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_words(v)}" for k, v in value.items())
    return str(value)


def evidence_item(slug: str, item: Mapping[str, Any]) -> dict[str, str]:
    """One piece of evidence: what it is, a link to it when it has a page, the rest in words."""
    what, ident = str(item.get("what", "")), item.get("id", "")
    rest = "; ".join(
        f"{key.replace('_', ' ')}: {_words(value)}"
        for key, value in item.items()
        if key not in {"what", "id"} and value not in (None, "", [], ())
    )
    return {"what": what, "id": str(ident), "url": _link(slug, what, ident), "rest": rest}


# ---- a service's metrics: the page -----------------------------------------------------------


def _dora_card(report: services.Report, name: str) -> dict[str, Any]:
    number, previous = getattr(report.dora, name), getattr(report.previous, name)
    trend = services.plain(services.trend(name, number.value, previous.value))
    detail = number.detail
    deployments = _count(detail.get("deployments", 0), "deployment")
    notes = {
        "deployment_frequency": f"{deployments} on "
        f"{_count(detail.get('deployment_days', 0), 'day')}; "
        f"{percent(detail.get('share_of_weeks_with_3_deployment_days', 0.0))} of whole weeks "
        "with 3 deployment days or more",
        "change_lead_time": f"{_count(detail.get('commits', 0), 'commit')}; "
        f"p90 {span(detail.get('p90_s'))}",
        "change_fail_rate": f"{detail.get('failed', 0)} of {deployments} failed",
        "recovery_time": f"{_count(detail.get('failures', 0), 'failure')}; "
        f"p90 {span(detail.get('p90_s'))}",
        "rework_rate": f"{len(number.evidence)} of {deployments}",
    }
    label, meaning = METRICS[name]
    return {
        "metric": name,
        "label": label,
        "meaning": meaning,
        "value": figure(name, number.value, number.band),
        "band": number.band,
        "trend": trend_view(name, trend, previous.value, number.band),
        "note": notes[name],
        "count": len(number.evidence),
    }


def _evidence_tables(report: services.Report) -> dict[str, dict[str, Any]]:
    """For each metric, the table of deployments, commits or incidents behind it."""
    slug = report.service
    span_back = report.start - services.LOOKBACK - (report.end - report.start)
    known = {
        d.id: d for d in dora.production_deployments(services.records(slug, span_back, report.end))
    }

    def deployment(ident: int, extra: str = "") -> list[dict[str, str]]:
        found = known.get(ident)
        return [
            {"text": f"#{ident}", "url": _link(slug, "deployment", ident)},
            {"text": f"{found.ended:%Y-%m-%d %H:%M}" if found else "", "url": ""},
            {"text": found.release if found else "", "url": ""},
            {"text": extra or (found.sha[:10] if found else ""), "url": ""},
        ]

    measured = report.dora
    why = measured.change_fail_rate.detail.get("why", {})
    lead_rows = []
    for sha, ident in measured.change_lead_time.evidence:
        found = known.get(ident)
        committed = dict(found.commits).get(sha) if found else None
        lead = (found.ended - committed).total_seconds() if found and committed else None
        lead_rows.append(
            [
                {"text": str(sha)[:10], "url": ""},
                {"text": f"#{ident}", "url": _link(slug, "deployment", ident)},
                {"text": f"{committed:%Y-%m-%d %H:%M}" if committed else "", "url": ""},
                {"text": span(lead), "url": ""},
            ]
        )
    recovery_rows = []
    for what in measured.recovery_time.evidence:
        kind, _, number = str(what).partition(" ")
        ident = int(number) if number.isdigit() else number
        recovery_rows.append([{"text": str(what), "url": _link(slug, kind, ident)}])
    deployed = ["Deployment", "Ended", "Release"]
    tables: dict[str, dict[str, Any]] = {
        "deployment_frequency": {
            "head": [*deployed, "Commit"],
            "rows": [deployment(i) for i in measured.deployment_frequency.evidence],
        },
        "change_lead_time": {
            "head": ["Commit", "Deployment", "Committed", "Lead time"],
            "rows": lead_rows,
        },
        "change_fail_rate": {
            "head": [*deployed, "Why it failed"],
            "rows": [
                deployment(i, str(why.get(i, ""))) for i in measured.change_fail_rate.evidence
            ],
        },
        "recovery_time": {"head": ["Failure restored"], "rows": recovery_rows},
        "rework_rate": {
            "head": [*deployed, "Commit"],
            "rows": [deployment(i) for i in measured.rework_rate.evidence],
        },
    }
    for table in tables.values():  # each cell names its column, for the phone's stacked rows
        for row in table["rows"]:
            for cell, head in zip(row, table["head"], strict=True):
                cell["label"] = head
    return tables


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def _check_view(slug: str, group: str, check: Check) -> dict[str, Any]:
    icon, words = RESULTS.get(check.result, ("?", check.result))
    return {
        "group": group,
        "check": check,
        "icon": icon,
        "words": words,
        "result": check.result.replace(" ", "-"),
        "evidence": [evidence_item(slug, dict(item)) for item in check.evidence],
    }


ARROW, BOX, BOX_H, ROW_H, PER_ROW = 100, 136, 88, 150, 4
# heights in a row of the wide drawing: the wait above the arrow, "biggest wait" below it
WIDE_Y = {"wait": 24, "value": 42, "arrow": 58, "big1": 86, "big2": 102, "box": 14}
WIDE_Y |= {"name": 42, "work": 66, "samples": 88}
TALL_ARROW, TALL_BOX_H = 60, 72


def stream_diagram(stream: Any) -> dict[str, Any]:
    """Where the value stream map's shapes go: a wide drawing (stages left to right, four to a
    row, big enough to read) and a tall one for phones (top to bottom). Each stage's wait is on
    the arrow into its box; a later row starts from a line coming down from the row above."""
    wide, tall = [], []
    for index, stage in enumerate(stream.stages):
        shown = {
            "name": stage.name,
            "wait": "—" if stage.wait_s is None else span(stage.wait_s),
            "work": "no work time" if stage.process_s is None else f"work {span(stage.process_s)}",
            "samples": f"{stage.samples} sample{'s' if stage.samples != 1 else ''}",
            "biggest": stage.name == stream.biggest_wait,
            "empty": stage.samples == 0,
        }
        row, column = divmod(index, PER_ROW)
        x, top = 8 + column * (ARROW + BOX), 8 + row * ROW_H
        turn = ""
        if row and not column:  # down from the row above's last box, then to the left edge
            above = x + (PER_ROW - 1) * (ARROW + BOX) + ARROW + BOX // 2
            turn = f"M{above},{top - ROW_H + 102} V{top - 20} H{x} V{top + 58}"
        wide.append(
            {
                **shown,
                "x": x,
                "end": x + ARROW - 8,
                "mid": x + ARROW // 2,
                "top": top,
                "box_x": x + ARROW,
                "center": x + ARROW + BOX // 2,
                "turn": turn,
                "y": {key: top + offset for key, offset in WIDE_Y.items()},
            }
        )
        y = 8 + index * (TALL_ARROW + TALL_BOX_H)
        tall.append(
            {
                **shown,
                "y": y,
                "end": y + TALL_ARROW - 8,
                "label_y": y + TALL_ARROW // 2 + 5,
                "box_y": y + TALL_ARROW,
                "name_y": y + TALL_ARROW + 30,
                "work_y": y + TALL_ARROW + 54,
            }
        )
    rows = -(-len(wide) // PER_ROW)
    return {
        "wide": wide,
        "wide_width": 16 + min(len(wide), PER_ROW) * (ARROW + BOX),
        "wide_height": 8 + rows * ROW_H - 40,
        "tall": tall,
        "tall_height": 16 + len(tall) * (TALL_ARROW + TALL_BOX_H),
        "box": BOX,
        "box_h": BOX_H,
        "tall_box_h": TALL_BOX_H,
    }


def _sample(slug: str, item: Mapping[str, Any]) -> dict[str, str]:
    """One item's time in a stage of the value stream, in words."""
    what, ident = str(item.get("what", "")), item.get("id", "")
    parts = []
    if item.get("process_s") is not None:
        parts.append(f"work {span(item['process_s'])}")
    if item.get("wait_s") is not None:
        parts.append(f"wait {span(item['wait_s'])}")
    if item.get("at"):
        parts.append(f"out at {str(item['at'])[:16].replace('T', ' ')}")
    return {
        "what": what,
        "id": str(ident),
        "url": _link(slug, what, ident),
        "rest": ", ".join(parts),
    }


def _context(report: services.Report) -> dict[str, Any]:
    slug = report.service
    stream = report.value_stream
    weeks = report.weeks
    return {
        "report": report,
        "dora": [_dora_card(report, name) for name in METRICS],
        "evidence": _evidence_tables(report),
        "weeks": weeks,
        "chart": {
            "weeks": [w.week for w in weeks],
            "deployments": [w.deployments for w in weeks],
            "failed": [w.failed for w in weeks],
            "lead_time_h": [_hours(w.lead_time_s) for w in weeks],
            "recovery_h": [_hours(w.recovery_s) for w in weeks],
        },
        "no_deployments": not any(w.deployments for w in weeks),
        "no_lead": all(w.lead_time_s is None for w in weeks),
        "no_recovery": all(w.recovery_s is None for w in weeks),
        "week_rows": [
            {"week": w, "lead": span(w.lead_time_s), "recovery": span(w.recovery_s)} for w in weeks
        ],
        "checks": [_check_view(slug, "Flow and JKK", c) for c in report.flow],
        "ci": [_check_view(slug, "CI health", c) for c in report.ci],
        "stream": stream,
        "diagram": stream_diagram(stream),
        "stream_rows": [
            {
                "stage": s,
                "work": span(s.process_s),
                "wait": span(s.wait_s),
                "evidence": [_sample(slug, item) for item in s.evidence],
            }
            for s in stream.stages
        ],
        "efficiency": percent(stream.flow_efficiency),
        "lead": span(stream.lead_s),
        "work": span(stream.process_s),
        "maturity": [
            {"area": area, "steps": range(1, 6), "percent": 20 * area.level}
            for area in report.maturity
        ],
        "downloads": DOWNLOADS,
    }


def _service_or_404(request: HttpRequest, slug: str) -> Any:
    try:
        return catalog.get_service(slug)
    except ObeyaError as error:
        return render(request, "catalog/not_found.html", {"message": error.message}, status=404)


@login_required
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    """A service's metrics over the chosen window; a bad window is refused beside its field
    (400) and the page shows the default window meanwhile."""
    service = _service_or_404(request, slug)
    if isinstance(service, HttpResponse):
        return service
    typed = request.GET.get("window", "").strip()
    error, status = "", 200
    try:
        days = services.parse_window(typed)
    except InvalidInput as refused:
        error, status, days = refused.message, refused.status, 30
    context = _context(services.report(slug, days))
    context.update(
        service=service,
        typed=typed or f"{days}d",
        window=f"{days}d",
        windows=WINDOWS,
        error=error,
    )
    return render(request, "metrics/dashboard.html", context, status=status)
