"""`obeya channel …`: a service's notification channels (webhooks and e-mail lists) and
their delivery logs, through the API. A webhook's secret is read from standard input, so it
never shows in a process list or a shell history, and no answer carries it."""

from __future__ import annotations

import sys
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from obeya.cli import client
from obeya.cli.ops import JsonFlag, Service, when
from obeya.cli.output import fail, print_json, print_table

channel_app = typer.Typer(
    help="A service's notification channels: webhooks, e-mail, delivery logs.",
    no_args_is_help=True,
)
ChannelId = Annotated[int, typer.Argument(help="The channel's id (see `obeya channel list`).")]


def _target(c: dict[str, Any]) -> str:
    """A webhook's host (its path may hold a token), or the e-mail addresses."""
    if c["kind"] == "email":
        return ", ".join(c["recipients"])
    parts = urlsplit(c["url"])
    host = parts.hostname or c["url"]
    return f"{host}:{parts.port}" if parts.port else host


def _kinds(c: dict[str, Any]) -> str:
    return ",".join(c["kinds"]) or "all"


def _last(channel_id: int) -> str:
    newest = client.request("GET", f"/channels/{channel_id}/deliveries", params={"limit": 1})
    if not newest["items"]:
        return "nothing sent yet"
    d = newest["items"][0]
    return f"{d['status']} {d['event_kind']} {when(d['event_at'])}"


@channel_app.command("list")
def channel_list(service: Service, as_json: JsonFlag = False) -> None:
    """A service's channels: where each sends, which events, and how the last went."""
    items = client.request("GET", f"/services/{service}/channels")
    if as_json:
        print_json(items)
        return
    print_table(
        ("id", "name", "kind", "sends to", "events", "enabled", "last delivery"),
        [
            (
                c["id"],
                c["name"],
                c["kind"],
                _target(c),
                _kinds(c),
                "yes" if c["enabled"] else "no",
                _last(c["id"]),
            )
            for c in items
        ],
    )


def _words(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


@channel_app.command("add")
def channel_add(
    service: Service,
    name: Annotated[str, typer.Argument(help="A name of 1 to 63 characters.")],
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="POST signed JSON to this URL.")
    ] = None,
    secret_stdin: Annotated[
        bool,
        typer.Option("--secret-stdin", help="Read the webhook's signing secret from stdin."),
    ] = False,
    email: Annotated[
        str | None, typer.Option("--email", help="Mail these addresses (comma-separated).")
    ] = None,
    kinds: Annotated[
        str | None,
        typer.Option("--kinds", help="Only these event kinds (comma-separated); default all."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set up a webhook (--webhook URL --secret-stdin) or an e-mail channel (--email)."""
    if (webhook is None) == (email is None):
        fail("give either --webhook URL or --email ADDR[,ADDR] (one of them)")
    body: dict[str, Any] = {"name": name, "kinds": _words(kinds)}
    if webhook is not None:
        if not secret_stdin:
            fail("a webhook needs a secret to sign its bodies: pipe it in with --secret-stdin")
        body.update(kind="webhook", url=webhook, secret=sys.stdin.readline().rstrip("\r\n"))
    else:
        if secret_stdin:
            fail("--secret-stdin is for webhooks: an e-mail channel has no secret")
        body.update(kind="email", recipients=_words(email))
    made = client.request("POST", f"/services/{service}/channels", json_body=body)
    if as_json:
        print_json(made)
        return
    typer.echo(
        f"channel {made['id']} {made['name']} of {service}: {made['kind']} to "
        f"{_target(made)}, for {', '.join(made['kinds']) or 'every notified event'}"
    )


@channel_app.command("remove")
def channel_remove(channel_id: ChannelId, as_json: JsonFlag = False) -> None:
    """Remove a channel, with its delivery log."""
    client.request("DELETE", f"/channels/{channel_id}")
    removed = {"channel": channel_id, "removed": True}
    print_json(removed) if as_json else typer.echo(f"removed channel {channel_id}")


def _tries(d: dict[str, Any]) -> str:
    """Each try's answer in order: a status code, or "-" when none came."""
    return " ".join(str(t["status_code"] or "-") for t in d["tries"])


@channel_app.command("deliveries")
def channel_deliveries(
    channel_id: ChannelId,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """A channel's delivery log: each event told, its status, its tries and last error."""
    items = client.get_all(f"/channels/{channel_id}/deliveries", limit=limit)
    if as_json:
        print_json(items)
        return
    print_table(
        ("delivery", "event", "at", "status", "tries", "answers", "last error"),
        [
            (
                d["id"],
                d["event_kind"],
                when(d["event_at"]),
                d["status"],
                d["attempts"],
                _tries(d),
                d["last_error"][:80],
            )
            for d in items
        ],
    )
