"""`obeya incident …`, `obeya monitor …`, `obeya slo list` and `obeya problem list`:
operations through the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from obeya.cli import client
from obeya.cli.output import fail, print_json, print_table

incident_app = typer.Typer(
    help="Open, move, note, link, list and show incidents.", no_args_is_help=True
)
monitor_app = typer.Typer(help="List, add and remove a service's monitors.", no_args_is_help=True)
slo_app = typer.Typer(help="A service's SLOs and error budgets.", no_args_is_help=True)
problem_app = typer.Typer(help="A service's problems.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Service = Annotated[str, typer.Argument(help="The service's slug.")]
Number = Annotated[int, typer.Argument(help="The incident's number (3 for INC-3).")]
NoteOption = Annotated[str, typer.Option("--note", help="A line for the timeline.")]


# ---- printing ----------------------------------------------------------------------------


def when(stamp: str | None) -> str:
    return (stamp or "").replace("T", " ")[:19]


def duration(seconds: float | None) -> str:
    """Seconds as people read them: 45s, 4m 10s, 2h 5m, 3d 4h."""
    if seconds is None:
        return ""
    whole = round(seconds)
    for size, unit, smaller, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m")):
        if whole >= size:
            return f"{whole // size}{unit} {whole % size // smaller}{small_unit}"
    return f"{whole // 60}m {whole % 60}s" if whole >= 60 else f"{whole}s"


def headline(i: dict[str, Any]) -> str:
    return f"{i['key']} of {i['service']} ({i['severity']}, {i['status']}): {i['title']}"


def _times(i: dict[str, Any]) -> str:
    parts = []
    if i["time_to_acknowledge_s"] is not None:
        parts.append(f"acknowledged after {duration(i['time_to_acknowledge_s'])}")
    if i["time_to_restore_s"] is not None:
        parts.append(f"restored after {duration(i['time_to_restore_s'])}")
    return ", ".join(parts)


def _show_incident(i: dict[str, Any]) -> None:
    typer.echo(headline(i))
    source = i["source"] + (f" ({i['monitor']})" if i["monitor"] else "")
    for label, value in (
        ("opened", f"{when(i['opened_at'])} from {source}"),
        ("commander", i["commander"]),
        ("times", _times(i)),
        ("problems", ", ".join(f"PRB-{n}" for n in i["problems"])),
    ):
        if value:
            typer.echo(f"  {label}: {value}")
    for cause in i["causes"]:
        where = cause["environment"] or "deployment gone"
        how = "automatically" if cause["automatic"] else f"by {cause['linked_by']}"
        typer.echo(f"  caused by deployment {cause['deployment']} ({where}), linked {how}")
    if i["timeline"]:
        typer.echo("  timeline:")
    for entry in i["timeline"]:
        typer.echo(f"    {when(entry['at'])}  {entry['who']}: {entry['what']}")
    postmortem = i["postmortem"]
    if postmortem:
        typer.echo(f"  postmortem: {postmortem['summary']}")
        for factor in postmortem["factors"]:
            typer.echo(f"    factor: {factor}")
        for action in postmortem["actions"]:
            typer.echo(f"    follow-up {action['story_key']}: {action['title']}")
    elif i["status"] in {"mitigated", "resolved"}:
        typer.echo("  postmortem: not written yet")


def _incident_row(i: dict[str, Any]) -> tuple[Any, ...]:
    return (
        i["service"],
        i["key"],
        i["severity"],
        i["status"],
        when(i["opened_at"])[:16],
        i["commander"],
        duration(i["time_to_acknowledge_s"]),
        duration(i["time_to_restore_s"]),
        i["title"],
    )


def _incident_path(service: str, number: int | None = None) -> str:
    path = f"/services/{service}/incidents"
    return path if number is None else f"{path}/{number}"


# ---- incidents ---------------------------------------------------------------------------


@incident_app.command("open")
def incident_open(
    service: Service,
    title: Annotated[str, typer.Argument(help="What hurts, in a few words.")],
    severity: Annotated[
        str, typer.Option("--severity", help="sev1 (down for everyone) to sev4 (cosmetic).")
    ] = "sev3",
    deployment: Annotated[
        int | None, typer.Option("--deployment", help="The deployment that caused it.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Open an incident by hand (anyone on the team); you become its commander."""
    body = {"title": title, "severity": severity, "deployment": deployment}
    opened = client.request("POST", _incident_path(service), json_body=body)
    print_json(opened) if as_json else typer.echo(f"opened {headline(opened)}")


def _move(service: str, number: int, verb: str, note: str, as_json: bool) -> None:
    moved = client.request(
        "POST", f"{_incident_path(service, number)}/{verb}", json_body={"note": note}
    )
    if as_json:
        print_json(moved)
        return
    times = _times(moved)
    typer.echo(headline(moved) + (f"  ({times})" if times else ""))


@incident_app.command("ack")
def incident_ack(
    service: Service, number: Number, note: NoteOption = "", as_json: JsonFlag = False
) -> None:
    """Acknowledge an incident (operator, reliability or devops engineer, service master)."""
    _move(service, number, "acknowledge", note, as_json)


@incident_app.command("mitigate")
def incident_mitigate(
    service: Service, number: Number, note: NoteOption = "", as_json: JsonFlag = False
) -> None:
    """Say the service works again for its users; the time to restore stops here."""
    _move(service, number, "mitigate", note, as_json)


@incident_app.command("resolve")
def incident_resolve(
    service: Service, number: Number, note: NoteOption = "", as_json: JsonFlag = False
) -> None:
    """Resolve an incident; steps it skipped get the same time."""
    _move(service, number, "resolve", note, as_json)


@incident_app.command("list")
def incident_list(
    service: Annotated[
        str | None, typer.Argument(help="Only this service's (default: every service's).")
    ] = None,
    status: Annotated[
        str,
        typer.Option("--status", help="open, acknowledged, mitigated, resolved, or unresolved."),
    ] = "",
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Incidents, newest first: of one service, or of all."""
    if service:
        items = client.get_all(_incident_path(service), {"status": status}, limit=limit)
    else:
        items = client.get_all("/incidents", {"status": status}, limit=limit)
    if as_json:
        print_json(items)
        return
    print_table(
        ("service", "incident", "sev", "status", "opened", "commander", "tta", "ttr", "title"),
        [_incident_row(i) for i in items],
    )


@incident_app.command("show")
def incident_show(service: Service, number: Number, as_json: JsonFlag = False) -> None:
    """One incident: times, causes, timeline and postmortem."""
    found = client.request("GET", _incident_path(service, number))
    print_json(found) if as_json else _show_incident(found)


@incident_app.command("note")
def incident_note(
    service: Service,
    number: Number,
    text: Annotated[str, typer.Argument(help="The note.")],
    as_json: JsonFlag = False,
) -> None:
    """Add a note to an incident's timeline (anyone on the team)."""
    note = client.request(
        "POST", f"{_incident_path(service, number)}/notes", json_body={"text": text}
    )
    print_json(note) if as_json else typer.echo(f"noted on INC-{number} of {service}")


@incident_app.command("link")
def incident_link(
    service: Service,
    number: Number,
    deployment: Annotated[int, typer.Argument(help="The id of the deployment that caused it.")],
    as_json: JsonFlag = False,
) -> None:
    """Say which deployment caused an incident (it counts in the change failure rate)."""
    linked = client.request(
        "POST", f"{_incident_path(service, number)}/causes", json_body={"deployment": deployment}
    )
    if as_json:
        print_json(linked)
        return
    typer.echo(f"INC-{number} of {service} is linked to deployment {deployment}")


# ---- monitors ----------------------------------------------------------------------------


def _state(m: dict[str, Any]) -> str:
    if not m["enabled"]:
        return "disabled"
    if m["last_ok"] is None:
        return "not checked yet"
    if m["last_ok"]:
        return "ok"
    return f"FAILING ({m['consecutive_failures']}/{m['failure_threshold']})"


@monitor_app.command("list")
def monitor_list(service: Service, as_json: JsonFlag = False) -> None:
    """A service's monitors: what each checks, how often, and how the last check went."""
    items = client.get_all(f"/services/{service}/monitors")
    if as_json:
        print_json(items)
        return
    print_table(
        ("name", "kind", "env", "checks", "every", "state", "last checked", "detail"),
        [
            (
                m["name"],
                m["kind"],
                m["environment"],
                m["url"] if m["kind"] == "http" else m["command"],
                f"{m['interval_s']}s",
                _state(m),
                when(m["last_checked_at"]),
                m["last_detail"][:60],
            )
            for m in items
        ],
    )


@monitor_app.command("add")
def monitor_add(
    service: Service,
    name: Annotated[str, typer.Argument(help="Lower-case letters, digits, - and _.")],
    url: Annotated[str | None, typer.Option("--url", help="Check this address (HTTP GET).")] = None,
    command: Annotated[
        str | None, typer.Option("--command", help="Run this; exit 0 means healthy.")
    ] = None,
    interval: Annotated[
        int | None, typer.Option("--interval", help="Seconds between checks (default 30).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds a check may take (default 5).")
    ] = None,
    threshold: Annotated[
        int | None,
        typer.Option("--threshold", help="Failures in a row that open an incident (default 3)."),
    ] = None,
    environment: Annotated[
        str | None, typer.Option("--environment", help="The environment it watches.")
    ] = None,
    expect_status: Annotated[
        int | None, typer.Option("--expect-status", help="HTTP: the status that passes.")
    ] = None,
    contains: Annotated[
        str | None, typer.Option("--contains", help="HTTP: text the body must contain.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set up a monitor: an HTTP check (--url) or a command check (--command)."""
    if (url is None) == (command is None):
        fail("give either --url URL or --command CMD (one of them)")
    body: dict[str, Any] = {"name": name, "kind": "http" if url is not None else "command"}
    for key, value in (
        ("url", url),
        ("command", command),
        ("interval_s", interval),
        ("timeout_s", timeout),
        ("failure_threshold", threshold),
        ("environment", environment),
        ("expect_status", expect_status),
        ("contains", contains),
    ):
        if value is not None:
            body[key] = value
    made = client.request("POST", f"/services/{service}/monitors", json_body=body)
    if as_json:
        print_json(made)
        return
    what = made["url"] if made["kind"] == "http" else made["command"]
    typer.echo(
        f"monitor {made['name']} of {service} checks {what} every {made['interval_s']}s; "
        f"{made['failure_threshold']} failures in a row open an incident"
    )


@monitor_app.command("remove")
def monitor_remove(service: Service, name: str, as_json: JsonFlag = False) -> None:
    """Remove a monitor (not while an SLO is measured by it)."""
    client.request("DELETE", f"/services/{service}/monitors/{name}")
    removed = {"service": service, "monitor": name, "removed": True}
    print_json(removed) if as_json else typer.echo(f"removed monitor {name} of {service}")


# ---- SLOs and problems -------------------------------------------------------------------


def _percent(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}%"


@slo_app.command("list")
def slo_list(service: Service, as_json: JsonFlag = False) -> None:
    """A service's SLOs: objective, achieved, error budget left and burn-rate alerts."""
    items = client.request("GET", f"/services/{service}/slos")
    if as_json:
        print_json(items)
        return
    print_table(
        ("name", "kind", "objective", "window", "achieved", "budget left", "checks", "alert"),
        [
            (
                s["name"],
                s["kind"]
                + (f" ≤{s['latency_threshold_ms']:g}ms" if s["latency_threshold_ms"] else ""),
                _percent(s["objective_percent"], 2),
                f"{s['window_days']}d",
                _percent(s["status"]["achieved_percent"]),
                _percent(s["status"]["budget_remaining_percent"], 1),
                s["status"]["total"],
                s["status"]["alert"],
            )
            for s in items
        ],
    )


@problem_app.command("list")
def problem_list(service: Service, as_json: JsonFlag = False) -> None:
    """A service's problems: status, the incidents they group, their change requests."""
    items = client.get_all(f"/services/{service}/problems")
    if as_json:
        print_json(items)
        return
    print_table(
        ("problem", "status", "incidents", "change requests", "title"),
        [
            (
                p["key"],
                p["status"],
                ", ".join(f"INC-{n}" for n in p["incidents"]),
                ", ".join(p["change_requests"]),
                p["title"],
            )
            for p in items
        ],
    )
