"""`obeya incident`, `monitor`, `slo` and `problem` against a real `obeya serve`: an
incident's life from the command line, monitors added and removed, tables and --json, and
refusals as one line with exit code 2."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.processes import clean_env, obeya_server, run_obeya

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
PEOPLE = {"olga": "reliability_engineer", "otto": "operator", "dev": "developer"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server with the service "shop" and its people; a read-scope token for olga."""
    # test_channel_cli's webhook receivers listen on loopback, which the default allow-list
    # (environments' own URLs only) does not reach.
    base = clean_env(
        tmp_path_factory.mktemp("ops-cli") / "data", OBEYA_OUTBOUND_ALLOW="environments,loopback"
    )
    tokens = {}
    for name in PEOPLE:
        run_obeya("createuser", name, "--password-stdin", env=base, stdin=PASSWORD + "\n")
        made = run_obeya("token", "create", "--user", name, "--scope", "write", env=base)
        tokens[name] = made.stdout.strip().splitlines()[-1]
    made = run_obeya("token", "create", "--user", "olga", "--scope", "read", env=base)
    tokens["reader"] = made.stdout.strip().splitlines()[-1]
    with obeya_server(base) as url:
        envs = {name: {**base, "OBEYA_URL": url, "OBEYA_TOKEN": t} for name, t in tokens.items()}
        olga = envs["olga"]
        ok(olga, "service", "create", "shop", "--name", "Shop")
        for name, role in PEOPLE.items():
            ok(olga, "service", "member", "add", "shop", name, role)
        yield envs


def ok(env: dict[str, str], *args: str) -> str:
    result = run_obeya(*args, env=env)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def refused(env: dict[str, str], *args: str) -> str:
    result = run_obeya(*args, env=env)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("obeya: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def api(env: dict[str, str], method: str, path: str, body: Any = None) -> Any:
    """Call the API directly, for what the CLI has no verb for."""
    response = httpx.request(
        method,
        f"{env['OBEYA_URL']}/api{path}",
        json=body,
        headers={"Authorization": f"Bearer {env['OBEYA_TOKEN']}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json() if response.content else None


def test_an_incident_from_the_command_line(stack: Any) -> None:
    dev, otto, reader = stack["dev"], stack["otto"], stack["reader"]
    opened = ok(dev, "incident", "open", "shop", "Checkout returns 500", "--severity", "sev2")
    assert opened.strip() == "opened INC-1 of shop (sev2, open): Checkout returns 500"
    number = json.loads(ok(dev, "incident", "open", "shop", "Slow search", "--json"))["number"]
    assert number == 2

    acked = ok(otto, "incident", "ack", "shop", "1", "--note", "looking at it")
    assert "INC-1 of shop (sev2, acknowledged)" in acked and "acknowledged after" in acked
    assert ok(dev, "incident", "note", "shop", "1", "Seen again at 10:02").strip() == (
        "noted on INC-1 of shop"
    )
    mitigated = json.loads(ok(otto, "incident", "mitigate", "shop", "1", "--json"))
    assert mitigated["status"] == "mitigated" and mitigated["time_to_restore_s"] >= 0
    resolved = ok(otto, "incident", "resolve", "shop", "1", "--note", "pool resized")
    assert "resolved" in resolved and "restored after" in resolved

    shown = ok(reader, "incident", "show", "shop", "1")
    assert shown.startswith("INC-1 of shop (sev2, resolved): Checkout returns 500")
    assert "commander: dev" in shown and "otto: acknowledged: looking at it" in shown
    assert "dev: Seen again at 10:02" in shown and "postmortem: not written yet" in shown
    full = json.loads(ok(reader, "incident", "show", "shop", "1", "--json"))
    assert full["timeline"][0]["kind"] == "incident.opened" and full["postmortem"] is None

    table = ok(reader, "incident", "list", "shop")
    assert table.splitlines()[0].split()[:4] == ["SERVICE", "INCIDENT", "SEV", "STATUS"]
    assert "INC-2" in table and "Slow search" in table
    listed = json.loads(ok(reader, "incident", "list", "--status", "unresolved", "--json"))
    keys = {(i["service"], i["key"]) for i in listed}  # every service's
    assert ("shop", "INC-2") in keys and ("shop", "INC-1") not in keys
    resolved_only = json.loads(
        ok(reader, "incident", "list", "shop", "--status", "resolved", "--json")
    )
    assert [i["key"] for i in resolved_only] == ["INC-1"]


@pytest.fixture(scope="module")
def cart(stack: Any) -> None:
    """The service "cart" with one open incident, INC-1, to be refused things on."""
    olga = stack["olga"]
    ok(olga, "service", "create", "cart", "--name", "Cart")
    for name, role in PEOPLE.items():
        ok(olga, "service", "member", "add", "cart", name, role)
    ok(stack["dev"], "incident", "open", "cart", "Something to refuse things on")


@pytest.mark.parametrize(
    ("who", "args", "message"),
    [
        ("dev", ("incident", "open", "cart", "Down", "--severity", "sev9"), "unknown severity"),
        ("dev", ("incident", "open", "cart", "Down", "--deployment", "999"), "deployment"),
        ("dev", ("incident", "open", "ghost", "Down"), "ghost"),
        ("dev", ("incident", "ack", "cart", "1"), "operator"),
        ("otto", ("incident", "show", "cart", "99"), "no incident INC-99"),
        ("otto", ("incident", "link", "cart", "1", "999"), "deployment"),
        ("otto", ("incident", "list", "--status", "sideways"), "unknown status"),
        ("otto", ("incident", "note", "cart", "1", " "), "empty"),
        ("olga", ("monitor", "add", "cart", "m"), "--url URL or --command CMD"),
        ("olga", ("monitor", "add", "cart", "m", "--url", "u", "--command", "c"), "one of them"),
        ("olga", ("monitor", "add", "cart", "m", "--url", "ftp://x"), "http://"),
        (
            "olga",
            ("monitor", "add", "cart", "m", "--command", "true", "--interval", "1"),
            "interval_s",
        ),
        ("dev", ("monitor", "add", "cart", "m", "--command", "true"), "reliability_engineer"),
        ("olga", ("monitor", "remove", "cart", "ghost"), 'no monitor "ghost"'),
        ("reader", ("incident", "open", "cart", "Down"), "read scope"),
        ("reader", ("monitor", "add", "cart", "m", "--command", "true"), "read scope"),
    ],
)
def test_refusals_are_one_line_and_exit_2(
    stack: Any, cart: None, who: str, args: tuple[str, ...], message: str
) -> None:
    assert message in refused(stack[who], *args)


def test_monitors_slos_and_problems_from_the_command_line(stack: Any) -> None:
    olga, reader = stack["olga"], stack["reader"]
    ok(olga, "service", "create", "web", "--name", "Web")
    added = ok(
        olga,
        "monitor",
        "add",
        "web",
        "health",
        "--url",
        "http://127.0.0.1:9/health",
        "--interval",
        "86400",
        "--timeout",
        "2",
        "--threshold",
        "5",
        "--environment",
        "production",
        "--expect-status",
        "204",
        "--contains",
        "ok",
    )
    assert added.strip() == (
        "monitor health of web checks http://127.0.0.1:9/health every 86400s; "
        "5 failures in a row open an incident"
    )
    made = json.loads(ok(olga, "monitor", "add", "web", "disk", "--command", "df -h /", "--json"))
    assert (made["kind"], made["command"], made["interval_s"]) == ("command", "df -h /", 30)
    listed = json.loads(ok(reader, "monitor", "list", "web", "--json"))
    assert [(m["name"], m["environment"]) for m in listed] == [
        ("disk", ""),
        ("health", "production"),
    ]
    health = listed[1]
    assert (health["expect_status"], health["contains"], health["timeout_s"]) == (204, "ok", 2.0)
    table = ok(reader, "monitor", "list", "web")
    assert table.splitlines()[0].split()[:4] == ["NAME", "KIND", "ENV", "CHECKS"]
    assert "http://127.0.0.1:9/health" in table and "df -h /" in table

    assert json.loads(ok(reader, "slo", "list", "web", "--json")) == []
    slo = {"name": "up", "kind": "availability", "objective_percent": 99.5, "monitor": "health"}
    api(olga, "POST", "/services/web/slos", slo)
    slos = ok(reader, "slo", "list", "web")
    assert "up" in slos and "99.50%" in slos and "30d" in slos
    assert json.loads(ok(reader, "slo", "list", "web", "--json"))[0]["status"]["total"] >= 0
    assert "remove the SLO first" in refused(olga, "monitor", "remove", "web", "health")

    ok(olga, "incident", "open", "web", "Pages time out")
    api(olga, "POST", "/services/web/problems", {"title": "Pool too small", "incidents": [1]})
    problems = ok(reader, "problem", "list", "web")
    assert "PRB-1" in problems and "INC-1" in problems and "Pool too small" in problems
    assert json.loads(ok(reader, "problem", "list", "web", "--json"))[0]["incidents"] == [1]

    assert ok(olga, "monitor", "remove", "web", "disk").strip() == "removed monitor disk of web"
    assert [m["name"] for m in json.loads(ok(reader, "monitor", "list", "web", "--json"))] == [
        "health"
    ]
