"""`obeya pipeline …`, `obeya logs`, `obeya andon …`, `obeya secret …`: pipelines through the
API; `obeya runner` (a job runner) and `obeya runners …` (register them on this server)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from obeya.cli import client
from obeya.cli.output import fail, print_json, print_table

pipeline_app = typer.Typer(help="Start, list and show pipeline runs.", no_args_is_help=True)
andon_app = typer.Typer(help="Pull or reset a service's andon cord.", no_args_is_help=True)
secret_app = typer.Typer(help="Write-only secrets for a service's jobs.", no_args_is_help=True)
runners_app = typer.Typer(
    help="Register runners on this server (admin verb), list, pause and resume them.",
    no_args_is_help=True,
)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
FINISHED = {"succeeded", "failed", "canceled", "blocked"}  # blocked: waits for a person


def _run_line(run: dict[str, Any]) -> tuple[Any, ...]:
    duration = f"{run['duration_s']:.1f}s" if run.get("duration_s") is not None else ""
    return (
        run["number"],
        run["status"],
        run["branch"] or run["ref"],
        run["sha"][:10],
        run["message"].splitlines()[0][:50] if run["message"] else "",
        duration,
    )


def _show_run(run: dict[str, Any]) -> None:
    typer.echo(
        f"run #{run['number']} of {run['service']}: {run['status']}  "
        f"{run['branch'] or run['ref']} {run['sha'][:12]}  by {run['author_name']}"
    )
    if run["message"]:
        typer.echo(f"  {run['message'].splitlines()[0]}")
    for error in run["errors"]:
        typer.echo(f"  {error}")
    print_table(
        ("id", "job", "stage", "status", "attempt", "reason"),
        [
            (j["id"], j["name"], j["stage"], j["status"], j["attempt"], j["failure_reason"])
            for j in run["jobs"]
        ],
    )


@pipeline_app.command("run")
def run(
    service: str,
    ref: Annotated[str | None, typer.Option(help="Branch, tag or commit (default branch).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the run to finish.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Start a run; with --wait, exit 0 if it succeeded (or waits for a manual job) and 1
    if not."""
    started = client.request("POST", f"/services/{service}/runs", json_body={"ref": ref})
    if not wait:
        print_json(started) if as_json else _show_run(started)
        return
    number = started["number"]
    typer.echo(f"run #{number} started; waiting…", err=True)
    current = started
    while current["status"] not in FINISHED:
        time.sleep(1)
        current = client.request("GET", f"/services/{service}/runs/{number}")
    print_json(current) if as_json else _show_run(current)
    if current["status"] == "blocked":
        typer.echo(f"run #{number} waits for a manual job: start it to go on", err=True)
    raise typer.Exit(0 if current["status"] in {"succeeded", "blocked"} else 1)


@pipeline_app.command("list")
def list_runs(service: str, branch: str = "", limit: int = 20, as_json: JsonFlag = False) -> None:
    """A service's runs, newest first."""
    items = client.get_all(f"/services/{service}/runs", {"branch": branch}, limit=limit)
    if as_json:
        print_json(items)
        return
    print_table(
        ("run", "status", "branch", "commit", "message", "took"),
        [_run_line(item) for item in items],
    )


@pipeline_app.command("show")
def show(service: str, number: int, as_json: JsonFlag = False) -> None:
    """One run and its jobs."""
    found = client.request("GET", f"/services/{service}/runs/{number}")
    print_json(found) if as_json else _show_run(found)


@pipeline_app.command("cancel")
def cancel(service: str, number: int) -> None:
    """Cancel a run."""
    found = client.request("POST", f"/services/{service}/runs/{number}/cancel")
    typer.echo(f"run #{number}: {found['status']}")


@pipeline_app.command("retry")
def retry(job: int) -> None:
    """Retry a failed or canceled job (by job id)."""
    found = client.request("POST", f"/jobs/{job}/retry")
    typer.echo(f"job {job} ({found['name']}): {found['status']}")


@pipeline_app.command("play")
def play(job: int) -> None:
    """Start a manual job (by job id)."""
    found = client.request("POST", f"/jobs/{job}/play")
    typer.echo(f"job {job} ({found['name']}): {found['status']}")


def logs(
    job: Annotated[int, typer.Argument(help="The job id (see `obeya pipeline show`).")],
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing until the job ends.")
    ] = False,
    attempt: Annotated[
        int | None, typer.Option(help="Which attempt (default: the latest).")
    ] = None,
) -> None:
    """Print a job's log; with -f, follow it, including the attempts of a retry."""
    offset, current = 0, attempt
    while True:
        data, status, seen, offset = client.read_log(job, offset, attempt)
        if attempt is None and current is not None and seen != current:
            offset = 0  # a new attempt started: its log begins again at byte 0
            typer.echo(f"\n--- attempt {seen} ---", err=True)
            current = seen
            continue
        current = seen
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        if not follow or status not in {"created", "queued", "running", "manual"}:
            return
        time.sleep(0.5)


@andon_app.command("pull")
def andon_pull(
    service: str, reason: Annotated[str, typer.Option(help="Why the line stops.")]
) -> None:
    """Stop the line for a service."""
    state = client.request(
        "POST", f"/services/{service}/andon", json_body={"action": "pull", "reason": reason}
    )
    typer.echo(f"andon of {service} pulled: {state['reason']}")


@andon_app.command("reset")
def andon_reset(
    service: str, reason: Annotated[str, typer.Option(help="Why it may restart.")]
) -> None:
    """Restart the line (devops_engineer or service_master)."""
    client.request(
        "POST", f"/services/{service}/andon", json_body={"action": "reset", "reason": reason}
    )
    typer.echo(f"andon of {service} reset")


@andon_app.command("show")
def andon_show(service: str, as_json: JsonFlag = False) -> None:
    """Whether the line is stopped, and why."""
    state = client.request("GET", f"/services/{service}/andon")
    if as_json:
        print_json(state)
    elif state["pulled"]:
        typer.echo(f"PULLED by {state['pulled_by']} at {state['pulled_at']}: {state['reason']}")
    else:
        typer.echo("released: the line runs")


EnvironmentOption = Annotated[
    str,
    typer.Option(
        "--environment",
        help="Scope: only jobs naming this environment get it (default: every job).",
    ),
]


@secret_app.command("set")
def secret_set(
    service: str,
    name: str,
    value_stdin: Annotated[
        bool, typer.Option("--value-stdin", help="Read the value from stdin.")
    ] = False,
    protected: Annotated[
        bool,
        typer.Option("--protected", help="Only runs of protected branches and tags get it."),
    ] = False,
    environment: EnvironmentOption = "",
) -> None:
    """Set a secret (the value is asked for, or read from stdin; never an argument)."""
    value = sys.stdin.read().rstrip("\n") if value_stdin else typer.prompt("Value", hide_input=True)
    body = {"value": value, "protected": protected, "environment": environment}
    client.request("PUT", f"/services/{service}/secrets/{name}", json_body=body)
    scope = f" for {environment}" if environment else ""
    typer.echo(f"{'protected ' if protected else ''}secret {name} of {service}{scope} set")


@secret_app.command("list")
def secret_list(service: str, as_json: JsonFlag = False) -> None:
    """Secret names, scopes and protection (values are never shown)."""
    items = client.request("GET", f"/services/{service}/secrets")
    print_json(items) if as_json else print_table(
        ("name", "environment", "protected", "updated"),
        [
            (s["name"], s["environment"], "yes" if s["protected"] else "", s["updated_at"][:19])
            for s in items
        ],
    )


@secret_app.command("delete")
def secret_delete(service: str, name: str, environment: EnvironmentOption = "") -> None:
    """Delete a secret (of one environment's scope with --environment)."""
    query = {"environment": environment} if environment else None
    client.request("DELETE", f"/services/{service}/secrets/{name}", params=query)
    typer.echo(f"secret {name} of {service}{f' for {environment}' if environment else ''} deleted")


def _patterns(value: str | None) -> list[str] | None:
    return None if value is None else [p.strip() for p in value.split(",") if p.strip()]


@pipeline_app.command("settings")
def pipeline_settings(
    service: str,
    default_branch: Annotated[
        str | None, typer.Option("--default-branch", help="The branch runs default to.")
    ] = None,
    poll_interval: Annotated[
        int | None, typer.Option("--poll-interval", help="Seconds between polls (0: off).")
    ] = None,
    protected_branches: Annotated[
        str | None,
        typer.Option(
            "--protected-branches",
            help="Comma-separated globs (release/*) of branches whose runs get protected "
            'secrets, besides the default branch; "" for none.',
        ),
    ] = None,
    protected_tags: Annotated[
        str | None,
        typer.Option(
            "--protected-tags",
            help='Comma-separated globs (v*) of tags whose runs get protected secrets; "" '
            "for none.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a service's pipeline settings; change those given."""
    changes = {
        "default_branch": default_branch,
        "poll_interval_s": poll_interval,
        "protected_branches": _patterns(protected_branches),
        "protected_tags": _patterns(protected_tags),
    }
    body = {key: value for key, value in changes.items() if value is not None}
    path = f"/services/{service}/pipeline"
    shown = client.request("PUT", path, json_body=body) if body else client.request("GET", path)
    if as_json:
        print_json(shown)
        return
    typer.echo(f"default branch      {shown['default_branch']} (protected)")
    typer.echo(f"poll interval       {shown['poll_interval_s'] or 'off'}")
    typer.echo(f"protected branches  {', '.join(shown['protected_branches']) or '-'}")
    typer.echo(f"protected tags      {', '.join(shown['protected_tags']) or '-'}")


def runner(
    server: Annotated[str, typer.Option(help="The Obeya server URL.")],
    token: Annotated[
        str,
        typer.Option(
            help="The runner token from `obeya runners register`.", envvar="OBEYA_RUNNER_TOKEN"
        ),
    ],
    labels: Annotated[str, typer.Option(help="Comma-separated labels this runner offers.")] = "",
    concurrency: Annotated[int, typer.Option(help="Jobs run at the same time.")] = 1,
    work_dir: Annotated[Path, typer.Option(help="Where job workspaces go.")] = Path("obeya-work"),
) -> None:
    """Run jobs for a server: pull, run, report. SIGTERM or Ctrl+C drains (no new jobs;
    running ones finish and are reported; exit 0); a second one kills them (exit 1)."""
    import logging

    from obeya.runner.client import ServerClient
    from obeya.runner.main import RunnerLoop, run_until_signalled

    if not 1 <= concurrency <= 64:
        fail("--concurrency must be 1 to 64")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # Without --labels the runner keeps the labels it was registered with.
    declared = [label.strip() for label in labels.split(",") if label.strip()] or None
    from obeya.runner import sandbox

    try:
        box = sandbox.configured()
    except ValueError as error:
        fail(str(error))
    if not box.available:
        fail(box.describe())
    loop = RunnerLoop(ServerClient(server, token), work_dir.resolve(), concurrency, declared)
    typer.echo(f"runner polling {server} with {concurrency} worker(s), labels {declared}", err=True)
    typer.echo(f"jobs run in: {box.describe()}", err=True)
    code = run_until_signalled(loop, lambda text: typer.echo(text, err=True))
    typer.echo("stopped" if code == 0 else "stopped hard: running jobs were killed", err=True)
    raise typer.Exit(code)


@runners_app.command("register")
def runners_register(
    name: str,
    labels: Annotated[str, typer.Option(help="Comma-separated labels.")] = "",
) -> None:
    """Register a runner on this server; prints its token once, on the last line."""
    from obeya.cli.local import prepare_database, setup_django

    setup_django()
    prepare_database()
    from obeya.core.actors import Actor
    from obeya.pipelines import services

    made, token = services.register_runner(
        Actor(user=None, channel="cli"), name, [x for x in labels.split(",") if x.strip()]
    )
    typer.echo(
        f"runner {made.name} (id {made.pk}), labels {made.labels}. Token, shown once:", err=True
    )
    typer.echo(token)


@runners_app.command("list")
def runners_list(as_json: JsonFlag = False) -> None:
    """Runners known to the server (through the API)."""
    items = client.request("GET", "/runners")
    if as_json:
        print_json(items)
        return
    print_table(
        ("name", "online", "sandbox", "labels", "jobs", "last seen"),
        [
            (
                r["name"],
                "paused" if r["paused"] else "yes" if r["online"] else "no",
                r["sandbox"] or "not said yet",
                ",".join(r["labels"]),
                ",".join(map(str, r["current_jobs"])),
                (r["last_seen_at"] or "")[:19],
            )
            for r in items
        ],
    )


def _set_paused(name: str, action: str) -> dict[str, Any]:
    """Pause or resume the runner called ``name`` (or with that id) through the API."""
    runners = client.request("GET", "/runners")
    found = [r for r in runners if r["name"] == name or str(r["id"]) == name]
    if not found:
        known = ", ".join(r["name"] for r in runners) or "none registered yet"
        fail(f'no runner named "{name}" (runners: {known})')
    changed: dict[str, Any] = client.request("POST", f"/runners/{found[0]['id']}/{action}")
    return changed


@runners_app.command("pause")
def runners_pause(name: str, as_json: JsonFlag = False) -> None:
    """Stop a runner taking jobs (it finishes the ones it runs). Needs an admin-scope token."""
    runner = _set_paused(name, "pause")
    print_json(runner) if as_json else typer.echo(f"runner {runner['name']} paused")


@runners_app.command("resume")
def runners_resume(name: str, as_json: JsonFlag = False) -> None:
    """Let a paused runner take jobs again. Needs an admin-scope token."""
    runner = _set_paused(name, "resume")
    print_json(runner) if as_json else typer.echo(f"runner {runner['name']} takes jobs again")


artifact_app = typer.Typer(help="List and download job artifacts.", no_args_is_help=True)


@artifact_app.command("list")
def artifact_list(job: int, as_json: JsonFlag = False) -> None:
    """A job's artifacts with their sha256."""
    items = client.request("GET", f"/jobs/{job}/artifacts")
    if as_json:
        print_json(items)
        return
    print_table(
        ("name", "attempt", "sha256", "bytes", "expires"),
        [(a["name"], a["attempt"], a["sha256"], a["size"], a["expires_at"][:10]) for a in items],
    )


@artifact_app.command("download")
def artifact_download(
    job: int,
    name: Annotated[str, typer.Option(help="Artifact name.")] = "artifacts",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
) -> None:
    """Download an artifact and check its sha256."""
    target = output or Path(f"job-{job}-{name}.tar.gz")
    sha256 = client.download(f"/jobs/{job}/artifacts/{name}", target)
    typer.echo(f"{target} sha256 {sha256}")


@pipeline_app.command("tests")
def tests(service: str, number: int, failed: bool = False, as_json: JsonFlag = False) -> None:
    """A run's test results (from its JUnit reports)."""
    report = client.request(
        "GET",
        f"/services/{service}/runs/{number}/tests",
        params={"status": "failed" if failed else ""},
    )
    if as_json:
        print_json(report)
        return
    typer.echo(
        f"{report['total']} tests: {report['passed']} passed, {report['failed']} failed, "
        f"{report['skipped']} skipped"
    )
    print_table(
        ("job", "status", "test", "message"),
        [
            (
                c["job"],
                c["status"],
                f"{c['classname']}.{c['name']}".strip("."),
                c["message"].splitlines()[0][:60] if c["message"] else "",
            )
            for c in report["cases"]
        ],
    )
