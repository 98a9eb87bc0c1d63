"""`obeya story …` and `obeya board`: a service's backlog and its board through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from obeya.cli import client
from obeya.cli.output import CliError, fail, print_json, print_table

story_app = typer.Typer(
    help="Add, list, show, edit and move a service's stories.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
DETAIL_HELP = "A field of the story's kind, as NAME=VALUE (repeatable), e.g. rpo_minutes=15."


def _details(
    pairs: list[str] | None, gherkin_file: Path | None, **named: str | None
) -> dict[str, Any]:
    """The kind's fields from --detail NAME=VALUE, the named options and a feature file."""
    details: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--detail takes NAME=VALUE, not {pair!r}")
        details[name.strip()] = value
    details.update({name: value for name, value in named.items() if value is not None})
    if gherkin_file is not None:
        try:
            details["gherkin"] = gherkin_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            fail(f"cannot read {gherkin_file}: {getattr(error, 'strerror', None) or error}")
    return details


def _send(method: str, path: str, body: dict[str, Any], gherkin_file: Path | None) -> Any:
    """Call the API; Gherkin mistakes are reported against the file, as FILE:LINE:COL."""
    try:
        return client.request(method, path, json_body=body)
    except CliError as error:
        message = str(error)
        if gherkin_file is not None and message.startswith("Gherkin: "):
            fail(f"{gherkin_file}:{message.removeprefix('Gherkin: ')}")
        raise


@story_app.command("add")
def add(
    service: str,
    title: Annotated[str, typer.Option(help="What the story is, in a line.")],
    kind: Annotated[
        str, typer.Option(help="user, test, operation, change_request or end_of_life.")
    ] = "user",
    description: Annotated[str, typer.Option()] = "",
    estimate: Annotated[int | None, typer.Option(help="Story points, 0 to 1000.")] = None,
    label: Annotated[list[str] | None, typer.Option(help="A label (repeatable).")] = None,
    assignee: Annotated[list[str] | None, typer.Option(help="A username (repeatable).")] = None,
    as_a: Annotated[str | None, typer.Option(help="User story: who it is for.")] = None,
    i_want: Annotated[str | None, typer.Option(help="User story: the function.")] = None,
    so_that: Annotated[str | None, typer.Option(help="User story: the value.")] = None,
    acceptance_criteria: Annotated[
        str | None, typer.Option(help="User story: acceptance criteria.")
    ] = None,
    detail: Annotated[list[str] | None, typer.Option(help=DETAIL_HELP)] = None,
    gherkin_file: Annotated[
        Path | None, typer.Option(help="Test story: the .feature file to read.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a story at the bottom of a service's backlog."""
    body = {
        "kind": kind,
        "title": title,
        "description": description,
        "estimate": estimate,
        "labels": label or [],
        "assignees": assignee or [],
        "details": _details(
            detail,
            gherkin_file,
            as_a=as_a,
            i_want=i_want,
            so_that=so_that,
            acceptance_criteria=acceptance_criteria,
        ),
    }
    story = _send("POST", f"/services/{service}/stories", body, gherkin_file)
    print_json(story) if as_json else typer.echo(
        f"created {story['key']} ({story['kind']}) in {story['column']}: {story['title']}"
    )


@story_app.command("list")
def list_stories(
    service: str,
    kind: Annotated[str, typer.Option(help="Only stories of this kind.")] = "",
    label: Annotated[str, typer.Option(help="Only stories with this label.")] = "",
    search: Annotated[str, typer.Option(help="Search titles and descriptions.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """A service's stories in backlog order."""
    items = client.get_all(
        f"/services/{service}/stories", {"kind": kind, "label": label, "search": search}
    )
    if as_json:
        print_json(items)
        return
    print_table(
        ("key", "kind", "title", "est", "column", "assignees", "labels"),
        [
            (
                s["key"],
                s["kind"],
                s["title"][:60],
                s["estimate"],
                s["column"],
                ",".join(s["assignees"]),
                ",".join(s["labels"]),
            )
            for s in items
        ],
    )


def _show_details(details: dict[str, Any]) -> None:
    for name, value in details.items():
        if name in ("gherkin", "keys") or value in (None, "", []):
            continue
        if name == "checklist":
            typer.echo("  checklist:")
            for item in value:
                typer.echo(f"    [{'x' if item['done'] else ' '}] {item['text']}")
        elif name == "scenarios":
            typer.echo(f"  scenarios: {'; '.join(value)}")
        else:
            text = str(value).replace("\n", "\n    ")
            typer.echo(f"  {name.replace('_', ' ')}: {text}")


def _show(story: dict[str, Any]) -> None:
    typer.echo(f"{story['key']} {story['title']}")
    facts = [
        ("kind", story["kind"]),
        ("column", story["column"]),
        ("estimate", story["estimate"]),
        ("labels", ", ".join(story["labels"])),
        ("assignees", ", ".join(story["assignees"])),
        ("from", story["source_file"]),
    ]
    for name, value in facts:
        if value not in (None, ""):
            typer.echo(f"  {name}: {value}")
    if story["description"]:
        typer.echo(f"  description: {story['description']}".replace("\n", "\n    "))
    _show_details(story["details"])
    card = story["card"]
    if card["checklist"]:
        typer.echo(f'definition of done to leave "{card["column"]}":')
        for item in card["checklist"]:
            typer.echo(f"  [{'x' if item['checked'] else ' '}] {item['item']}")
    if card["gates"]:
        typer.echo(f"gates: {', '.join(card['gates'])}")
    if card["override_reason"]:
        typer.echo(f"WIP override by {card['override_by']}: {card['override_reason']}")
    verdict = story["acceptance"]
    if verdict["state"] != "none":
        typer.echo(
            f"acceptance: {verdict['state']} ({verdict['passed']}/{verdict['scenarios']} "
            f"scenarios pass; {', '.join(verdict['tests'])})"
        )
    if story["findings"]:
        typer.echo("INVEST:")
        for finding in story["findings"]:
            typer.echo(f"  {finding['letter']} {finding['quality']}: {finding['reason']}")
    for commit in story["commits"]:
        first = commit["message"].splitlines()[0] if commit["message"] else ""
        typer.echo(f"  commit {commit['sha'][:10]} {commit['author']}: {first}")
    for result in story["scenario_results"]:
        typer.echo(f"  {result['story']} {result['status']:<8} {result['scenario']}")


@story_app.command("show")
def show(service: str, key: str, as_json: JsonFlag = False) -> None:
    """One story in full: fields, card, acceptance, INVEST findings, commits."""
    story = client.request("GET", f"/services/{service}/stories/{key}")
    print_json(story) if as_json else _show(story)


@story_app.command("edit")
def edit(
    service: str,
    key: str,
    title: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    estimate: Annotated[int | None, typer.Option(help="Story points, 0 to 1000.")] = None,
    label: Annotated[
        list[str] | None, typer.Option(help="A label (repeatable); replaces the labels.")
    ] = None,
    assignee: Annotated[
        list[str] | None, typer.Option(help="A username (repeatable); replaces the assignees.")
    ] = None,
    as_a: Annotated[str | None, typer.Option()] = None,
    i_want: Annotated[str | None, typer.Option()] = None,
    so_that: Annotated[str | None, typer.Option()] = None,
    acceptance_criteria: Annotated[str | None, typer.Option()] = None,
    detail: Annotated[list[str] | None, typer.Option(help=DETAIL_HELP)] = None,
    gherkin_file: Annotated[Path | None, typer.Option(help="Test story: a new .feature.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a story (only the options given)."""
    fields: dict[str, Any] = {
        "title": title,
        "description": description,
        "estimate": estimate,
        "labels": label,
        "assignees": assignee,
    }
    body = {name: value for name, value in fields.items() if value is not None}
    details = _details(
        detail,
        gherkin_file,
        as_a=as_a,
        i_want=i_want,
        so_that=so_that,
        acceptance_criteria=acceptance_criteria,
    )
    if details:
        body["details"] = details
    if not body:
        fail("nothing to change: give at least one option (see `obeya story edit --help`)")
    story = _send("PATCH", f"/services/{service}/stories/{key}", body, gherkin_file)
    print_json(story) if as_json else typer.echo(f"updated {story['key']}")


@story_app.command("move")
def move(
    service: str,
    key: str,
    column: Annotated[str, typer.Argument(help='The column\'s name, e.g. "In progress".')],
    override_reason: Annotated[
        str | None, typer.Option(help="Why the card may enter a full column (recorded).")
    ] = None,
    position: Annotated[int | None, typer.Option(help="Place in the column, from 0.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Move a story's card to another column of the board."""
    body = {"column": column, "position": position, "override_reason": override_reason}
    card = client.request("POST", f"/services/{service}/stories/{key}/moves", json_body=body)
    if as_json:
        print_json(card)
        return
    note = (
        f" (WIP override by {card['override_by']}: {card['override_reason']})"
        if card["override_reason"]
        else ""
    )
    typer.echo(f"{card['key']} is now in {card['column']}{note}")


@story_app.command("check")
def check(
    service: str,
    key: str,
    item: Annotated[str, typer.Argument(help="The checklist item's text.")],
    uncheck: Annotated[bool, typer.Option("--uncheck", help="Untick it instead.")] = False,
    end_of_life: Annotated[
        bool, typer.Option("--end-of-life", help="An item of the end-of-life checklist.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Tick an item of the card's definition of done (or of an end-of-life checklist)."""
    body = {
        "item": item,
        "checked": not uncheck,
        "checklist": "end_of_life" if end_of_life else "definition_of_done",
    }
    story = client.request("POST", f"/services/{service}/stories/{key}/checks", json_body=body)
    print_json(story) if as_json else typer.echo(
        f"{story['key']}: {'unticked' if uncheck else 'ticked'} {item!r}"
    )


def _show_board(found: dict[str, Any]) -> None:
    for index, column in enumerate(found["columns"]):
        if index:
            typer.echo("")
        flags = "  (full)" if column["full"] else ""
        typer.echo(f"{column['name']} {column['wip']}{flags}")
        if not column["cards"]:
            typer.echo("  -")
        for card in column["cards"]:
            who = f"  @{','.join(card['assignees'])}" if card["assignees"] else ""
            override = (
                f"  [WIP override by {card['override_by']}: {card['override_reason']}]"
                if card["override_reason"]
                else ""
            )
            typer.echo(f"  {card['key']:<6} {card['title']}{who}{override}")


def board(
    service: Annotated[str, typer.Argument(help="The service's slug.")],
    as_json: JsonFlag = False,
) -> None:
    """A service's board: each column with its WIP count and limit, and its cards."""
    found = client.request("GET", f"/services/{service}/board")
    print_json(found) if as_json else _show_board(found)
