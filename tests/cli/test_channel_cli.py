"""`obeya channel` against a real `obeya serve`: a webhook set up with its secret on stdin,
told about a real incident by the server's notifier, its delivery log read back; an e-mail
channel; refusals as one line with exit code 2."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from tests.cli.test_ops_cli import ok, refused, stack  # noqa: F401 - stack is a fixture
from tests.ops.test_notify import SECRET, receiver  # noqa: F401 - receiver is a fixture
from tests.processes import run_obeya

pytestmark = pytest.mark.e2e


def delivered(env: dict[str, str], channel: int) -> list[dict[str, Any]]:
    """The channel's deliveries once the server's notifier has delivered one."""
    for _ in range(100):
        found = json.loads(ok(env, "channel", "deliveries", str(channel), "--json"))
        if any(d["status"] == "delivered" for d in found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"nothing delivered to channel {channel}: {found}")


def test_channels_from_the_command_line(stack: Any, receiver: Any) -> None:  # noqa: F811
    url, handler = receiver
    olga, reader = stack["olga"], stack["reader"]
    result = run_obeya(
        "channel", "add", "shop", "chatops", "--webhook", url, "--secret-stdin",
        "--kinds", "incident.opened", env=olga, stdin=SECRET + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    host = url.split("/")[2]
    hook = int(result.stdout.split()[1])
    assert result.stdout.strip() == (
        f"channel {hook} chatops of shop: webhook to {host}, for incident.opened"
    )
    mail = json.loads(
        ok(olga, "channel", "add", "shop", "on-call", "--email", "a@x.org, b@x.org", "--json")
    )
    assert mail["recipients"] == ["a@x.org", "b@x.org"] and mail["kinds"] == []

    table = ok(reader, "channel", "list", "shop")
    assert table.splitlines()[0].split()[:4] == ["ID", "NAME", "KIND", "SENDS"]
    assert host in table and "a@x.org, b@x.org" in table and "nothing sent yet" in table
    listed = ok(reader, "channel", "list", "shop", "--json")
    assert SECRET not in listed and SECRET not in result.stdout
    assert [c["has_secret"] for c in json.loads(listed)] == [True, False]

    ok(stack["dev"], "incident", "open", "shop", "Checkout returns 500")
    [delivery] = delivered(reader, hook)
    assert delivery["event_kind"] == "incident.opened" and delivery["attempts"] == 1
    assert delivery["tries"][0]["status_code"] == 204
    headers, body = handler.received[0]
    signed = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Obeya-Signature-256"] == signed
    log = ok(reader, "channel", "deliveries", str(hook))
    assert "incident.opened" in log and "delivered" in log and " 204" in log
    assert "delivered incident.opened" in ok(reader, "channel", "list", "shop")

    assert ok(olga, "channel", "remove", str(hook)).strip() == f"removed channel {hook}"
    assert [c["name"] for c in json.loads(ok(reader, "channel", "list", "shop", "--json"))] == [
        "on-call"
    ]


@pytest.mark.parametrize(
    ("who", "args", "message"),
    [
        ("olga", ("channel", "add", "shop", "x"), "--webhook URL or --email"),
        ("olga", ("channel", "add", "shop", "x", "--webhook", "https://h.org"), "--secret-stdin"),
        ("olga", ("channel", "add", "shop", "x", "--email", "a@b.c", "--secret-stdin"), "e-mail"),
        ("olga", ("channel", "add", "shop", "x", "--email", "nobody"), "e-mail recipients"),
        (
            "olga",
            ("channel", "add", "shop", "x", "--email", "a@b.c", "--kinds", "story.moved"),
            "'story.moved' is not notified",
        ),
        ("dev", ("channel", "add", "shop", "x", "--email", "a@b.c"), "may not ops.configure"),
        ("reader", ("channel", "add", "shop", "x", "--email", "a@b.c"), "read scope"),
        ("olga", ("channel", "list", "ghost"), "ghost"),
        ("olga", ("channel", "remove", "999"), "no channel with id 999"),
        ("olga", ("channel", "deliveries", "999"), "no channel with id 999"),
    ],
)
def test_refusals_are_one_line_and_exit_2(
    stack: Any,  # noqa: F811
    who: str,
    args: tuple[str, ...],
    message: str,
) -> None:
    assert message in refused(stack[who], *args)


def test_a_short_secret_on_stdin_is_refused(stack: Any) -> None:  # noqa: F811
    args = ("channel", "add", "shop", "x", "--webhook", "https://h.org", "--secret-stdin")
    result = run_obeya(*args, env=stack["olga"], stdin="short\n")
    assert result.returncode == 2 and "at least 16 characters" in result.stderr
    assert "short" not in result.stderr
