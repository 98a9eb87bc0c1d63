"""`obeya metrics SERVICE` and `obeya room`: the measured figures through the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from obeya.cli import client
from obeya.cli.ops import duration
from obeya.cli.output import print_json, print_table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of text.")]
LABELS = {
    "deployment_frequency": "deployment frequency",
    "change_lead_time": "change lead time",
    "change_fail_rate": "change fail rate",
    "recovery_time": "recovery time",
    "rework_rate": "rework rate",
}
SHORT = {
    "deployment_frequency": "",
    "change_lead_time": "lead ",
    "change_fail_rate": "fail ",
    "recovery_time": "recovery ",
    "rework_rate": "rework ",
}


# ---- printing ----------------------------------------------------------------------------


def figure(metric: str, value: float | None) -> str:
    """A metric's value in the unit people read it in."""
    if value is None:
        return "no data"
    if metric == "deployment_frequency":
        return f"{value:.1f}/day" if value >= 1 else f"{value * 7:.1f}/week"
    if metric in {"change_lead_time", "recovery_time"}:
        return duration(value)
    return f"{value * 100:.0f}%"


def trend_words(metric: str, trend: dict[str, Any], previous: float | None) -> str:
    if trend["direction"] not in {"up", "down"}:
        return str(trend["words"])
    verdict = {True: ", better", False: ", worse"}.get(trend["better"], "")
    return f"{trend['direction']} from {figure(metric, previous)}{verdict}"


def when(stamp: str) -> str:
    return stamp.replace("T", " ")[:16]


def _show_dora(report: dict[str, Any]) -> None:
    rows = []
    for metric, label in LABELS.items():
        number = report["dora"][metric]
        before = report["previous"][metric]["value"]
        rows.append(
            (
                label,
                figure(metric, number["value"]),
                number["band"],
                trend_words(metric, report["trends"][metric], before),
            )
        )
    print_table(("metric", "value", "band", "trend"), rows)


def _show_checks(report: dict[str, Any]) -> None:
    checks = [("flow", c) for c in report["flow"]] + [("ci", c) for c in report["ci"]]
    print_table(
        ("group", "result", "check", "summary"),
        [(group, c["result"], c["title"], c["summary"]) for group, c in checks],
    )


def stream_line(stream: dict[str, Any]) -> str:
    if stream["lead_s"] is None:
        return "value stream: no data in this window"
    parts = [f"value stream: lead {duration(stream['lead_s'])}"]
    if stream["process_s"] is not None and stream["wait_s"] is not None:
        parts[0] += f" = work {duration(stream['process_s'])} + wait {duration(stream['wait_s'])}"
    if stream["flow_efficiency"] is not None:
        parts.append(f"flow efficiency {stream['flow_efficiency'] * 100:.0f}%")
    if stream["biggest_wait"]:
        parts.append(f"biggest wait: {stream['biggest_wait']}")
    return ", ".join(parts)


def _show_report(report: dict[str, Any]) -> None:
    typer.echo(
        f"{report['service']} ({report['name']}), the last {report['days']} days: "
        f"{when(report['start'])} to {when(report['end'])}"
    )
    typer.echo("")
    _show_dora(report)
    typer.echo("")
    _show_checks(report)
    typer.echo("")
    typer.echo(stream_line(report["value_stream"]))
    typer.echo("")
    print_table(
        ("area", "level", "next step"),
        [(a["name"], f"{a['level']}/5", a["next_step"]) for a in report["maturity"]],
    )


def dora_line(dora: dict[str, dict[str, Any]]) -> str:
    parts = []
    for metric in LABELS:
        tile = dora[metric]
        known = tile["value"] is not None and tile["band"] in {"elite", "high", "medium", "low"}
        band = f" ({tile['band']})" if known else ""
        parts.append(f"{SHORT[metric]}{figure(metric, tile['value'])}{band}")
    return "DORA: " + ", ".join(parts)


def _environment(env: dict[str, Any]) -> str:
    release = env["version"] or env["release"] or "nothing deployed"
    waiting = f", {env['waiting']} waiting" if env["waiting"] else ""
    return f"{env['name']} {release} ({env['health']}{waiting})"


def _show_tile(tile: dict[str, Any]) -> None:
    cord = f"andon PULLED: {tile['andon_reason']}" if tile["andon_pulled"] else "andon clear"
    typer.echo(f"{tile['slug']} ({tile['name']}, {tile['stage']}): {cord}")
    environments = ", ".join(_environment(e) for e in tile["environments"]) or "none"
    typer.echo(f"  environments: {environments}")
    typer.echo(f"  {dora_line(tile['dora'])}")
    for incident in tile["incidents"]:
        typer.echo(
            f"  incident INC-{incident['number']} ({incident['severity']}, "
            f"{incident['status']}): {incident['title']}"
        )


# ---- commands ----------------------------------------------------------------------------


def metrics(
    service: Annotated[str, typer.Argument(help="The service's slug.")],
    window: Annotated[
        str,
        typer.Option("--window", help="How far back: 30d, 12w or 90 (days), 1 to 365 days."),
    ] = "30d",
    as_json: JsonFlag = False,
) -> None:
    """A service's DORA metrics with bands and trends, checks, value stream and maturity."""
    found = client.request("GET", f"/services/{service}/metrics", params={"window": window})
    print_json(found) if as_json else _show_report(found)


def room(as_json: JsonFlag = False) -> None:
    """Every live service at a glance: andon, environments, DORA, open incidents."""
    found = client.request("GET", "/room")
    if as_json:
        print_json(found)
        return
    if not found["services"]:
        typer.echo("no live services: add one with `obeya service create`")
    for number, tile in enumerate(found["services"]):
        if number:
            typer.echo("")
        _show_tile(tile)
