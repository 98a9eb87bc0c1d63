"""`obeya env …`: define, change and look at a service's environments through the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from obeya.cli import client
from obeya.cli.deploy import JsonFlag, headline, short_sha, when
from obeya.cli.output import fail, print_json, print_table

env_app = typer.Typer(
    help="Define, change and look at a service's environments.", no_args_is_help=True
)

Tier = Annotated[str | None, typer.Option(help="development, testing, staging or production.")]
Position = Annotated[int | None, typer.Option(help="Order of promotion (lower comes first).")]
Protected = Annotated[
    bool | None,
    typer.Option("--protected/--unprotected", help="Deploys wait for approvals."),
]
Approvals = Annotated[int | None, typer.Option("--approvals", help="Approvals required (0-5).")]
ApprovalRole = Annotated[
    str | None, typer.Option("--approval-role", help="Role that approves (gatekeeper).")
]
TargetRoot = Annotated[
    str | None,
    typer.Option("--target-root", help="Absolute directory on the server for a local target."),
]
HealthUrl = Annotated[str | None, typer.Option("--health-url", help="HTTP health check URL.")]
HealthCommand = Annotated[
    str | None,
    typer.Option("--health-command", help="Shell health check (exit 0 = healthy)."),
]
Warmup = Annotated[
    int | None, typer.Option("--warmup", help="Seconds the health check has to pass.")
]
Passes = Annotated[int | None, typer.Option("--passes", help="Passing checks in a row needed.")]
Interval = Annotated[
    int | None, typer.Option("--interval-ms", help="Milliseconds between health checks.")
]
Retention = Annotated[int | None, typer.Option(help="Releases kept on the target.")]
HookTimeout = Annotated[int | None, typer.Option("--hook-timeout", help="Seconds per hook.")]
BeforeSwitch = Annotated[
    str | None,
    typer.Option("--before-switch", help='Hook before the switch, e.g. migrations ("" removes).'),
]
Restart = Annotated[
    str | None, typer.Option("--restart", help='Hook that restarts the service ("" removes).')
]
AfterSwitch = Annotated[
    str | None, typer.Option("--after-switch", help='Hook after the switch ("" removes).')
]


def _settings(
    current_hooks: dict[str, str],
    *,
    tier: str | None,
    position: int | None,
    protected: bool | None,
    approvals: int | None,
    approval_role: str | None,
    target_root: str | None,
    health_url: str | None,
    health_command: str | None,
    warmup: int | None,
    passes: int | None,
    interval_ms: int | None,
    retention: int | None,
    hook_timeout: int | None,
    hooks: dict[str, str | None],
) -> dict[str, Any]:
    """The API body for the options given (options left out are not sent)."""
    if health_url is not None and health_command is not None:
        fail("give --health-url or --health-command, not both")
    body: dict[str, Any] = {
        key: value
        for key, value in (
            ("tier", tier),
            ("position", position),
            ("protected", protected),
            ("required_approvals", approvals),
            ("approval_role", approval_role),
            ("warmup_s", warmup),
            ("health_passes", passes),
            ("health_interval_ms", interval_ms),
            ("retention", retention),
            ("hook_timeout_s", hook_timeout),
        )
        if value is not None
    }
    if target_root is not None:
        body["target"] = {"kind": "local", "root": target_root}
    if health_url is not None:
        body["health"] = {"kind": "http", "url": health_url}
    elif health_command is not None:
        body["health"] = {"kind": "command", "command": health_command}
    if any(value is not None for value in hooks.values()):
        merged = dict(current_hooks)
        for name, command in hooks.items():
            if command is not None:
                merged[name] = command
        body["hooks"] = {name: command for name, command in merged.items() if command}
    return body


def _health_text(health: dict[str, Any]) -> str:
    if health.get("kind") == "http":
        return f"GET {health.get('url')}"
    if health.get("kind") == "command":
        return f"$ {health.get('command')}"
    return "none"


def _target_text(target: dict[str, Any]) -> str:
    if target.get("kind") == "ssh":
        return f"ssh {', '.join(target.get('hosts') or [])}:{target.get('root')}"
    return f"{target.get('kind', '?')} {target.get('root', '')}".strip()


def _show_environment(e: dict[str, Any]) -> None:
    guard = (
        f"protected: {e['required_approvals']} approval(s) by {e['approval_role']}"
        if e["protected"]
        else f"not protected, {e['required_approvals']} approval(s)"
    )
    typer.echo(f"{e['service']}/{e['name']} ({e['tier']}, position {e['position']}): {guard}")
    typer.echo(f"  target: {_target_text(e['target'])}")
    typer.echo(
        f"  health: {_health_text(e['health'])}; {e['health_passes']} pass(es) in a row "
        f"within {e['warmup_s']}s, every {e['health_interval_ms']}ms"
    )
    for name, command in (e["hooks"] or {}).items():
        typer.echo(f"  hook {name}: {command}")
    typer.echo(f"  retention: {e['retention']} release(s)")
    running = e["running"]
    typer.echo(f"health: {e['health_state']}")
    if running is None:
        typer.echo("running: nothing deployed yet")
    else:
        approved = ", ".join(running["approved_by"]) or "-"
        typer.echo(
            f"running: release {running['release_id']}  version {running['version'] or '-'}  "
            f"commit {short_sha(running['sha'])}  run #{running['run'] or '-'}"
        )
        typer.echo(f"  artifact sha256 {running['artifact_sha256']}")
        typer.echo(
            f"  since {when(running['since'])}, deployed by {running['deployed_by'] or 'system'}"
            f", approved by {approved}"
        )
    if e["current_release"] and running and e["current_release"] != running["release_id"]:
        typer.echo(f"  current points at {e['current_release']}")
    drift = e["drift"]
    if drift is not None and drift["found"]:
        typer.echo(f"DRIFT: {drift['summary']} (current no longer matches its release)")
    last = e["last"]
    if last is not None and last["status"] != "succeeded":
        typer.echo(f"last deployment {last['id']}: {last['status']}: {last['reason']}")
    for waiting in e["waiting"]:
        typer.echo(f"waiting: {headline(waiting)}")
    if e["next_environment"]:
        commits = e["not_yet_in_next"]
        typer.echo(f"next: {e['next_environment']} lacks {len(commits)} commit(s) from here")
        for commit in commits[:10]:
            first = commit["message"].splitlines()[0] if commit["message"] else ""
            typer.echo(f"  {short_sha(commit['sha'], 10)} {commit['author_name']}: {first[:60]}")
    if e["kept_releases"]:
        typer.echo("kept releases:")
        for release in e["kept_releases"]:
            mark = "*" if release["current"] else " "
            typer.echo(
                f" {mark} {release['release_id']}  {release['version'] or '-'}  "
                f"{short_sha(release['sha'], 10)}"
            )


@env_app.command("list")
def env_list(service: str, as_json: JsonFlag = False) -> None:
    """Every environment side by side: what runs there, health, what waits."""
    items = client.request("GET", f"/services/{service}/environments-overview")
    if as_json:
        print_json(items)
        return
    rows = []
    for e in items:
        running = e["running"] or {}
        rows.append(
            (
                e["name"],
                e["tier"],
                f"yes ({e['required_approvals']})" if e["protected"] else "no",
                running.get("version"),
                short_sha(running.get("sha"), 10),
                running.get("release_id"),
                when(running.get("since")),
                e["health_state"] + (" DRIFT" if (e["drift"] or {}).get("found") else ""),
                len(e["waiting"]) or "",
            )
        )
    print_table(
        ("env", "tier", "protected", "version", "commit", "release", "since", "health", "waiting"),
        rows,
    )


@env_app.command("show")
def env_show(service: str, environment: str, as_json: JsonFlag = False) -> None:
    """One environment: settings, what runs there, drift, what waits, what is next."""
    found = client.request("GET", f"/services/{service}/environments/{environment}")
    print_json(found) if as_json else _show_environment(found)


@env_app.command("create")
def env_create(
    service: str,
    environment: Annotated[str, typer.Argument(help="Name: lower-case letters, digits, - _.")],
    tier: Tier = None,
    position: Position = None,
    protected: Protected = None,
    approvals: Approvals = None,
    approval_role: ApprovalRole = None,
    target_root: TargetRoot = None,
    health_url: HealthUrl = None,
    health_command: HealthCommand = None,
    warmup: Warmup = None,
    passes: Passes = None,
    interval_ms: Interval = None,
    retention: Retention = None,
    hook_timeout: HookTimeout = None,
    before_switch: BeforeSwitch = None,
    restart: Restart = None,
    after_switch: AfterSwitch = None,
    as_json: JsonFlag = False,
) -> None:
    """Define an environment (devops_engineer or service_master)."""
    body = _settings(
        {},
        tier=tier,
        position=position,
        protected=protected,
        approvals=approvals,
        approval_role=approval_role,
        target_root=target_root,
        health_url=health_url,
        health_command=health_command,
        warmup=warmup,
        passes=passes,
        interval_ms=interval_ms,
        retention=retention,
        hook_timeout=hook_timeout,
        hooks={"before_switch": before_switch, "restart": restart, "after_switch": after_switch},
    )
    made = client.request(
        "POST", f"/services/{service}/environments", json_body={"name": environment, **body}
    )
    print_json(made) if as_json else _show_environment(made)


@env_app.command("edit")
def env_edit(
    service: str,
    environment: str,
    tier: Tier = None,
    position: Position = None,
    protected: Protected = None,
    approvals: Approvals = None,
    approval_role: ApprovalRole = None,
    target_root: TargetRoot = None,
    health_url: HealthUrl = None,
    health_command: HealthCommand = None,
    warmup: Warmup = None,
    passes: Passes = None,
    interval_ms: Interval = None,
    retention: Retention = None,
    hook_timeout: HookTimeout = None,
    before_switch: BeforeSwitch = None,
    restart: Restart = None,
    after_switch: AfterSwitch = None,
    as_json: JsonFlag = False,
) -> None:
    """Change an environment's settings; options left out stay as they are."""
    hooks = {"before_switch": before_switch, "restart": restart, "after_switch": after_switch}
    path = f"/services/{service}/environments/{environment}"
    current = client.request("GET", path) if any(v is not None for v in hooks.values()) else {}
    body = _settings(
        current.get("hooks") or {},
        tier=tier,
        position=position,
        protected=protected,
        approvals=approvals,
        approval_role=approval_role,
        target_root=target_root,
        health_url=health_url,
        health_command=health_command,
        warmup=warmup,
        passes=passes,
        interval_ms=interval_ms,
        retention=retention,
        hook_timeout=hook_timeout,
        hooks=hooks,
    )
    if not body:
        fail("nothing to change: give at least one option (see --help)")
    changed = client.request("PATCH", path, json_body=body)
    print_json(changed) if as_json else _show_environment(changed)
