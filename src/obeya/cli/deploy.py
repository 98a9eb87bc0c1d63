"""`obeya deploy`, `obeya rollback`, `obeya approve` and `obeya deployment …`: deployments
through the API (environments are in ``cli/environments.py``)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from obeya.cli import client
from obeya.cli.output import print_json, print_table

deployment_app = typer.Typer(help="List, show and cancel deployments.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
WaitFlag = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Follow the deployment to its end, printing its log; exit 0 if it succeeded, "
        "1 if not.",
    ),
]
FINISHED = {"succeeded", "failed", "rolled_back", "outdated", "canceled", "rejected"}
LOG_PAGE = 1000
POLL_S = 0.5


# ---- printing ----------------------------------------------------------------------------


def short_sha(sha: str | None, size: int = 12) -> str:
    return (sha or "")[:size]


def when(stamp: str | None) -> str:
    return (stamp or "").replace("T", " ")[:19]


def headline(d: dict[str, Any]) -> str:
    what = f"rollback to {d['release_id']}" if d["kind"] == "rollback" else "deployment"
    source = f"run #{d['run']}" if d["run"] else "no run"
    version = f" {d['version']}" if d["version"] else ""
    return (
        f"{what} {d['id']} of {d['service']} to {d['environment']}: {d['status']}  "
        f"({source}, {short_sha(d['sha']) or '-'}{version})"
    )


def _waiting_hint(d: dict[str, Any]) -> str:
    given = sum(1 for a in d["approvals"] if a["decision"] == "approve")
    return (
        f"waits for approval ({given}/{d['required_approvals']}): someone with the approving "
        f"role runs `obeya approve {d['id']} --comment …`"
    )


def _show_deployment(d: dict[str, Any]) -> None:
    typer.echo(headline(d))
    for label, value in (
        ("requested by", f"{d['requested_by'] or 'system'} at {when(d['requested_at'])}"),
        ("branch", d["branch"]),
        (
            "artifact",
            f"{d['artifact_job']} sha256 {d['artifact_sha256']}".strip()
            if d["artifact_sha256"]
            else "",
        ),
        ("release", d["release_id"]),
        ("previous release", d["previous_release_id"]),
        ("started", when(d["started_at"])),
        ("finished", when(d["finished_at"])),
        ("took", f"{d['duration_s']:.1f}s" if d["duration_s"] is not None else ""),
        ("step", d["step"]),
        ("reason", d["reason"]),
    ):
        if value:
            typer.echo(f"  {label}: {value}")
    for approval in d["approvals"]:
        typer.echo(
            f"  {approval['decision']}d by {approval['user']} at {when(approval['at'])}: "
            f"{approval['comment']}"
        )
    if d["status"] == "waiting_approval":
        typer.echo(f"  {_waiting_hint(d)}")


def _log_line(line: dict[str, Any]) -> str:
    return f"{when(line['at'])[11:]}  {line['step']:<13} {line['line']}"


def _deployment_row(d: dict[str, Any]) -> tuple[Any, ...]:
    took = f"{d['duration_s']:.1f}s" if d["duration_s"] is not None else ""
    return (
        d["id"],
        d["environment"],
        d["kind"],
        d["status"],
        f"#{d['run']}" if d["run"] else "",
        short_sha(d["sha"], 10),
        d["version"],
        d["requested_by"],
        when(d["requested_at"]),
        took,
    )


def _follow(deployment: dict[str, Any], as_json: bool) -> None:
    """Print the log as it grows until the deployment ends; exit 0 only if it succeeded."""
    number, after, hinted = deployment["id"], 0, False
    while True:
        page = client.request("GET", f"/deployments/{number}/log", params={"after": after})
        for line in page["lines"]:
            typer.echo(_log_line(line), err=as_json)
        after = page["after"]
        if page["status"] == "waiting_approval" and not hinted:
            typer.echo(_waiting_hint(client.request("GET", f"/deployments/{number}")), err=True)
            hinted = True
        # The status is read before the lines, so once it is final every line is in.
        if page["status"] in FINISHED and len(page["lines"]) < LOG_PAGE:
            break
        if not page["lines"]:
            time.sleep(POLL_S)
    final = client.request("GET", f"/deployments/{number}")
    if as_json:
        print_json(final)
    else:
        typer.echo(headline(final))
        if final["reason"]:
            typer.echo(f"  reason: {final['reason']}")
    raise typer.Exit(0 if final["status"] == "succeeded" else 1)


def _requested(deployment: dict[str, Any], wait: bool, as_json: bool) -> None:
    if wait:
        _follow(deployment, as_json)
    elif as_json:
        print_json(deployment)
    else:
        _show_deployment(deployment)


# ---- deploy, rollback, approve -----------------------------------------------------------


def deploy(
    service: Annotated[str, typer.Argument(help="The service's slug.")],
    environment: Annotated[str, typer.Argument(help="The environment, e.g. staging.")],
    run: Annotated[
        int | None,
        typer.Option("--run", help="Run number (default: the newest deployable run of main)."),
    ] = None,
    wait: WaitFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Deploy a run's build to an environment (build once, promote)."""
    made = client.request(
        "POST", f"/services/{service}/environments/{environment}/deploy", json_body={"run": run}
    )
    _requested(made, wait, as_json)


def rollback(
    service: Annotated[str, typer.Argument(help="The service's slug.")],
    environment: Annotated[str, typer.Argument(help="The environment to roll back.")],
    to: Annotated[
        str | None,
        typer.Option("--to", help="A kept release (default: the one before current)."),
    ] = None,
    wait: WaitFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Go back to a kept release; a recorded deployment, subject to the same approvals."""
    made = client.request(
        "POST", f"/services/{service}/environments/{environment}/rollback", json_body={"to": to}
    )
    _requested(made, wait, as_json)


def approve(
    deployment: Annotated[int, typer.Argument(help="The deployment id.")],
    comment: Annotated[str, typer.Option("--comment", help="Why (required).")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject it instead.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Approve (or --reject) a deployment waiting for approval; not your own."""
    verb = "reject" if reject else "approve"
    decided = client.request(
        "POST", f"/deployments/{deployment}/{verb}", json_body={"comment": comment}
    )
    print_json(decided) if as_json else _show_deployment(decided)


# ---- deployments -------------------------------------------------------------------------


def _all_log(deployment: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.request("GET", f"/deployments/{deployment}/log", params={"after": after})
        lines.extend(page["lines"])
        after = page["after"]
        if len(page["lines"]) < LOG_PAGE:
            return lines


@deployment_app.command("show")
def deployment_show(
    deployment: int,
    log: Annotated[bool, typer.Option("--log", help="Print its log too.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """One deployment: what, where, who asked and approved, how it ended."""
    found = client.request("GET", f"/deployments/{deployment}")
    lines = _all_log(deployment) if log else []
    if as_json:
        print_json({**found, "log": lines} if log else found)
        return
    _show_deployment(found)
    for line in lines:
        typer.echo(_log_line(line))


@deployment_app.command("list")
def deployment_list(
    service: str,
    env: Annotated[str, typer.Option("--env", help="Only this environment.")] = "",
    status: Annotated[str, typer.Option(help="Only this status, e.g. waiting_approval.")] = "",
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """A service's deployments, newest first."""
    items = client.get_all(
        f"/services/{service}/deployments", {"environment": env, "status": status}, limit=limit
    )
    if as_json:
        print_json(items)
        return
    print_table(
        ("id", "env", "kind", "status", "run", "commit", "version", "by", "requested", "took"),
        [_deployment_row(d) for d in items],
    )


@deployment_app.command("cancel")
def deployment_cancel(deployment: int, as_json: JsonFlag = False) -> None:
    """Withdraw a deployment that has not started (waiting for approval or queued)."""
    found = client.request("POST", f"/deployments/{deployment}/cancel")
    print_json(found) if as_json else typer.echo(headline(found))
