"""`obeya story …` and `obeya board` against a real `obeya serve`: output, --json, exit 2."""

from __future__ import annotations

import json

import pytest

from tests.processes import clean_env, obeya_server, run_obeya

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
FEATURE = """@S-1
Feature: Pay by card
  Scenario: A valid card is charged
    Given a basket of 10 EUR
    When I pay with a valid card
    Then the order is paid
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data = tmp_path_factory.mktemp("backlog-cli") / "data"
    base = clean_env(data)
    run_obeya("createuser", "alice", "--password-stdin", env=base, stdin=PASSWORD + "\n")
    made = run_obeya("token", "create", "--user", "alice", "--scope", "write", env=base)
    token = made.stdout.strip().splitlines()[-1]
    with obeya_server(base) as url:
        yield {**base, "OBEYA_URL": url, "OBEYA_TOKEN": token}


def service(env, slug: str) -> str:
    """A new service for one test, so tests share the server but not a backlog."""
    obeya(env, "service", "create", slug, "--name", slug.title())
    return slug


def obeya(env, *args):
    result = run_obeya(*args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(env, *args) -> str:
    result = run_obeya(*args, env=env)
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("obeya: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_add_list_show_and_edit(env, tmp_path):
    service(env, "pay")
    added = obeya(
        env,
        "story",
        "add",
        "pay",
        "--title",
        "Pay by card",
        "--as-a",
        "shopper",
        "--i-want",
        "to pay by card",
        "--estimate",
        "3",
        "--label",
        "payments",
        "--assignee",
        "alice",
    )
    assert added.strip() == "created S-1 (user) in Backlog: Pay by card"
    feature = tmp_path / "pay.feature"
    feature.write_text(FEATURE)
    test = obeya(
        env,
        "story",
        "add",
        "pay",
        "--kind",
        "test",
        "--title",
        "Card",
        "--gherkin-file",
        str(feature),
    )
    assert "created S-2 (test)" in test
    obeya(
        env,
        "story",
        "add",
        "pay",
        "--kind",
        "operation",
        "--title",
        "Stay up",
        "--detail",
        "availability_target=99.9",
        "--detail",
        "rpo_minutes=15",
    )

    listed = obeya(env, "story", "list", "pay")
    assert listed.splitlines()[0].split()[:3] == ["KEY", "KIND", "TITLE"]
    assert "S-1" in listed and "Pay by card" in listed and "payments" in listed
    operations = json.loads(obeya(env, "story", "list", "pay", "--kind", "operation", "--json"))
    assert [(s["key"], s["kind"]) for s in operations] == [("S-3", "operation")]

    shown = obeya(env, "story", "show", "pay", "S-1")
    assert shown.startswith("S-1 Pay by card\n  kind: user\n  column: Backlog\n")
    assert "as a: shopper" in shown and "acceptance: not_run (0/1 scenarios pass; S-2)" in shown
    assert 'V Valuable: no "so that"' in shown
    details = json.loads(obeya(env, "story", "show", "pay", "S-3", "--json"))["details"]
    assert details["availability_target"] == 99.9 and details["rpo_minutes"] == 15

    obeya(env, "story", "edit", "pay", "S-1", "--so-that", "I get my order", "--estimate", "2")
    edited = json.loads(obeya(env, "story", "show", "pay", "S-1", "--json"))
    assert edited["estimate"] == 2 and edited["details"]["so_that"] == "I get my order"
    assert edited["details"]["as_a"] == "shopper"


def test_bad_input_is_one_line_and_exit_2(env, tmp_path):
    pay = service(env, "refusals")
    broken = tmp_path / "broken.feature"
    broken.write_text("Feature: Pay\n  Scenario: one\n    Given a basket\n  Oops\n")
    line = refused(
        env, "story", "add", pay, "--kind", "test", "--title", "x", "--gherkin-file", str(broken)
    )
    assert line.startswith(f"obeya: {broken}:4:")
    assert "unknown story kind 'epic'" in refused(
        env, "story", "add", pay, "--kind", "epic", "--title", "x"
    )
    orphan = tmp_path / "orphan.feature"
    orphan.write_text(FEATURE.replace("S-1", "S-99"))
    assert 'tag @S-99 names no story of "refusals"' in refused(
        env, "story", "add", pay, "--kind", "test", "--title", "x", "--gherkin-file", str(orphan)
    )
    assert "--detail takes NAME=VALUE" in refused(
        env, "story", "add", pay, "--title", "x", "--detail", "oops"
    )
    assert "cannot read" in refused(
        env, "story", "add", pay, "--title", "x", "--gherkin-file", str(tmp_path / "none")
    )
    assert 'no story S-404 in "refusals"' in refused(env, "story", "show", pay, "S-404")
    assert "nothing to change" in refused(env, "story", "edit", pay, "S-1")
    assert json.loads(obeya(env, "story", "list", pay, "--json")) == []


def test_moves_wip_refusal_then_override_and_the_board(env):
    pay = service(env, "kanban")
    for n in range(4):
        obeya(env, "story", "add", pay, "--title", f"Board story {n}")
    keys = [s["key"] for s in json.loads(obeya(env, "story", "list", pay, "--json"))]
    assert keys == ["S-1", "S-2", "S-3", "S-4"]
    for key in keys[:3]:
        assert obeya(env, "story", "move", pay, key, "In progress").strip() == (
            f"{key} is now in In progress"
        )
    fourth = keys[3]
    line = refused(env, "story", "move", pay, fourth, "In progress")
    assert line == (
        'obeya: WIP limit reached in "In progress" (3/3): finish or move a card first, '
        "or override with a reason."
    )
    assert "needs a reason" in refused(
        env, "story", "move", pay, fourth, "In progress", "--override-reason", " "
    )
    board = obeya(env, "board", pay)
    assert "In progress 3/3  (full)" in board
    assert f"  {fourth}" in board.split("Ready")[0]  # still in Backlog

    forced = obeya(env, "story", "move", pay, fourth, "In progress", "--override-reason", "hotfix")
    assert forced.strip() == f"{fourth} is now in In progress (WIP override by alice: hotfix)"
    board = obeya(env, "board", pay)
    assert "In progress 4/3  (full)" in board
    assert "[WIP override by alice: hotfix]" in board
    assert "Board story 0" in board.split("In progress")[1]
    columns = json.loads(obeya(env, "board", pay, "--json"))["columns"]
    doing = next(c for c in columns if c["name"] == "In progress")
    assert doing["wip"] == "4/3" and len(doing["cards"]) == 4

    assert 'cannot leave "In progress"' in refused(env, "story", "move", pay, fourth, "Review")
    obeya(env, "story", "check", pay, fourth, "Code reviewed")
    assert obeya(env, "story", "move", pay, fourth, "Review").strip() == (
        f"{fourth} is now in Review"
    )
    assert "is not a column" in refused(env, "story", "move", pay, fourth, "Nowhere")
