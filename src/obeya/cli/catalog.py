"""`obeya service …`: the service catalog through the API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from obeya.cli import client
from obeya.cli.output import print_json, print_table

app = typer.Typer(help="List, show, create and change services.", no_args_is_help=True)
member_app = typer.Typer(help="Give and take team roles.", no_args_is_help=True)
app.add_typer(member_app, name="member")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@app.command("list")
def list_services(
    search: Annotated[str, typer.Option(help="Filter by name, slug or team.")] = "",
    stage: Annotated[str, typer.Option(help="Only services in this stage.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """List services."""
    items = client.get_all("/services", {"search": search, "stage": stage})
    if as_json:
        print_json(items)
        return
    print_table(
        ("slug", "name", "stage", "owner team"),
        [(s["slug"], s["name"], s["stage"], s["owner_team"]) for s in items],
    )


def _show(service: dict[str, Any]) -> None:
    typer.echo(f"{service['name']} ({service['slug']})  stage: {service['stage']}")
    for key in (
        "description",
        "repository_url",
        "owner_team",
        "vision",
        "goals",
        "business_value",
        "customers",
    ):
        if service.get(key):
            text = str(service[key]).replace("\n", "\n    ")
            typer.echo(f"  {key.replace('_', ' ')}: {text}")
    typer.echo("team:")
    for member in service["members"] or []:
        typer.echo(f"  {member['username']:<20} {member['role']}")
    typer.echo("next stages:")
    for option in service["transitions"]:
        note = "" if option["allowed"] else f"  (blocked: {option['problem']})"
        typer.echo(f"  {option['to']}{note}")


@app.command("show")
def show(slug: str, as_json: JsonFlag = False) -> None:
    """Show one service: charter, team and the stages it can move to."""
    service = client.request("GET", f"/services/{slug}")
    print_json(service) if as_json else _show(service)


@app.command("create")
def create(
    slug: Annotated[str, typer.Argument(help="2-50 lower-case letters, digits, hyphens.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    description: Annotated[str, typer.Option()] = "",
    repository_url: Annotated[str, typer.Option("--repo", help="Git repository URL or path.")] = "",
    owner_team: Annotated[str, typer.Option("--team", help="Owner team.")] = "",
    stage: Annotated[str, typer.Option(help="Starting lifecycle stage.")] = "strategy",
    vision: Annotated[str, typer.Option()] = "",
    goals: Annotated[str, typer.Option()] = "",
    business_value: Annotated[str, typer.Option("--value", help="Business value.")] = "",
    customers: Annotated[str, typer.Option()] = "",
    as_json: JsonFlag = False,
) -> None:
    """Register a service; you become its service master."""
    body = {
        "slug": slug,
        "name": name,
        "description": description,
        "repository_url": repository_url,
        "owner_team": owner_team,
        "stage": stage,
        "vision": vision,
        "goals": goals,
        "business_value": business_value,
        "customers": customers,
    }
    service = client.request("POST", "/services", json_body=body)
    print_json(service) if as_json else typer.echo(
        f"created {service['slug']} in stage {service['stage']}"
    )


@app.command("edit")
def edit(
    slug: str,
    name: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    repository_url: Annotated[str | None, typer.Option("--repo")] = None,
    owner_team: Annotated[str | None, typer.Option("--team")] = None,
    vision: Annotated[str | None, typer.Option()] = None,
    goals: Annotated[str | None, typer.Option()] = None,
    business_value: Annotated[str | None, typer.Option("--value")] = None,
    customers: Annotated[str | None, typer.Option()] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a service's details or charter (only the options given)."""
    fields = {
        "name": name,
        "description": description,
        "repository_url": repository_url,
        "owner_team": owner_team,
        "vision": vision,
        "goals": goals,
        "business_value": business_value,
        "customers": customers,
    }
    body = {key: value for key, value in fields.items() if value is not None}
    service = client.request("PATCH", f"/services/{slug}", json_body=body)
    print_json(service) if as_json else typer.echo(f"updated {slug}")


@app.command("stage")
def stage(
    slug: str,
    to: Annotated[str, typer.Argument(help="The stage to move to.")],
    reason: Annotated[str, typer.Option(help="Why, for the timeline.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Move a service to another lifecycle stage."""
    service = client.request(
        "POST", f"/services/{slug}/transitions", json_body={"to": to, "reason": reason}
    )
    print_json(service) if as_json else typer.echo(f"{slug} is now in stage {service['stage']}")


@app.command("timeline")
def timeline(
    slug: str,
    limit: Annotated[int, typer.Option(help="How many events, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """The service's timeline, newest first."""
    items = client.get_all(f"/services/{slug}/events", limit=limit)
    if as_json:
        print_json(items)
        return
    print_table(
        ("at", "actor", "kind", "subject"),
        [(e["at"][:19], e["actor"], e["kind"], e["subject"]) for e in items],
    )


@member_app.command("add")
def member_add(slug: str, username: str, role: str, as_json: JsonFlag = False) -> None:
    """Give USERNAME the ROLE on the service's team."""
    member = client.request(
        "POST", f"/services/{slug}/members", json_body={"username": username, "role": role}
    )
    print_json(member) if as_json else typer.echo(f"{username} is now {role} on {slug}")


@member_app.command("remove")
def member_remove(slug: str, username: str, role: str) -> None:
    """Take ROLE away from USERNAME."""
    client.request("DELETE", f"/services/{slug}/members/{username}/roles/{role}")
    typer.echo(f"{username} no longer holds {role} on {slug}")


@member_app.command("list")
def member_list(slug: str, as_json: JsonFlag = False) -> None:
    """The service's team."""
    items = client.get_all(f"/services/{slug}/members")
    if as_json:
        print_json(items)
        return
    print_table(
        ("person", "role", "since"), [(m["username"], m["role"], m["since"][:10]) for m in items]
    )
