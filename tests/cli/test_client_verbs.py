"""The API-client verbs against a real `obeya serve`: output, --json and exit codes."""

from __future__ import annotations

import json

import pytest

from tests.processes import clean_env, free_port, obeya_server, run_obeya

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("client") / "data"
    env = clean_env(data)
    run_obeya("createuser", "alice", "--password-stdin", env=env, stdin=PASSWORD + "\n")
    run_obeya("createuser", "bob", "--password-stdin", env=env, stdin=PASSWORD + "\n")
    tokens = {}
    for user, scope in (("alice", "write"), ("bob", "write"), ("alice", "read")):
        made = run_obeya("token", "create", "--user", user, "--scope", scope, env=env)
        tokens[(user, scope)] = made.stdout.strip().splitlines()[-1]
    with obeya_server(env) as url:
        yield url, env, tokens


def as_user(server, user="alice", scope="write", **extra):
    url, env, tokens = server
    return {**env, "OBEYA_URL": url, "OBEYA_TOKEN": tokens[(user, scope)], **extra}


def test_login_saves_the_server_and_token(server, tmp_path):
    url, env, tokens = server
    mine = {**env, "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    bad = run_obeya("login", url, "--token-stdin", env=mine, stdin="obeya_wrong\n")
    assert bad.returncode == 2 and "not valid" in bad.stderr
    good = run_obeya("login", url, "--token-stdin", env=mine, stdin=tokens[("alice", "write")])
    assert good.returncode == 0 and "as alice" in good.stdout
    saved = tmp_path / "cfg" / "obeya" / "login.json"
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    listed = run_obeya("service", "list", "--json", env=mine)
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)


def test_service_lifecycle_from_the_cli(server):
    env = as_user(server)
    created = run_obeya(
        "service",
        "create",
        "cli-svc",
        "--name",
        "CLI Service",
        "--team",
        "Heron",
        "--vision",
        "Typed in a terminal",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    assert (
        run_obeya("service", "member", "add", "cli-svc", "bob", "developer", env=env).returncode
        == 0
    )
    moved = run_obeya("service", "stage", "cli-svc", "marketing", "--reason", "go", env=env)
    assert moved.returncode == 0 and "now in stage marketing" in moved.stdout
    shown = json.loads(run_obeya("service", "show", "cli-svc", "--json", env=env).stdout)
    assert shown["stage"] == "marketing" and shown["vision"] == "Typed in a terminal"
    assert {(m["username"], m["role"]) for m in shown["members"]} == {
        ("alice", "service_master"),
        ("bob", "developer"),
    }
    text = run_obeya("service", "show", "cli-svc", env=env).stdout
    assert "planning" in text and "bob" in text
    listed = run_obeya("service", "list", env=env).stdout
    assert "cli-svc" in listed and "SLUG" in listed
    timeline = json.loads(run_obeya("service", "timeline", "cli-svc", "--json", env=env).stdout)
    assert timeline[0]["kind"] == "service.stage_changed"
    events = run_obeya("events", "--service", "cli-svc", "--kind", "member.", env=env)
    assert "member.added" in events.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("service", "create", "Bad Slug", "--name", "x"), "not valid"),
        (("service", "show", "ghost"), 'no service "ghost"'),
        (("service", "stage", "ghost", "marketing"), 'no service "ghost"'),
        (("service", "member", "add", "ghost", "bob", "boss"), "unknown role"),
    ],
)
def test_refusals_are_one_line_and_exit_2(server, args, message):
    result = run_obeya(*args, env=as_user(server))
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_illegal_transition_and_forbidden_role(server):
    env = as_user(server)
    run_obeya("service", "create", "rules", "--name", "Rules", env=env)
    illegal = run_obeya("service", "stage", "rules", "operation", env=env)
    assert illegal.returncode == 2 and "go to marketing" in illegal.stderr
    forbidden = run_obeya("service", "stage", "rules", "marketing", env=as_user(server, "bob"))
    assert forbidden.returncode == 2 and "service_master" in forbidden.stderr
    read_only = run_obeya(
        "service", "create", "ro", "--name", "RO", env=as_user(server, "alice", "read")
    )
    assert read_only.returncode == 2 and "read scope" in read_only.stderr


def test_not_logged_in_and_unreachable_server(server, tmp_path):
    _, env, _ = server
    lonely = {**env, "XDG_CONFIG_HOME": str(tmp_path / "none")}
    result = run_obeya("service", "list", env=lonely)
    assert result.returncode == 2 and "obeya login" in result.stderr
    away = {**as_user(server), "OBEYA_URL": f"http://127.0.0.1:{free_port()}"}
    result = run_obeya("service", "list", env=away)
    assert result.returncode == 2 and "cannot reach" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(server):
    result = run_obeya("service", "stage", env=as_user(server))
    assert result.returncode == 2


def test_scoped_and_protected_secrets_from_the_cli(server):
    env = as_user(server)
    made = run_obeya("service", "create", "sec-svc", "--name", "Secrets", env=env)
    assert made.returncode == 0, made.stderr
    set_one = run_obeya(
        "secret",
        "set",
        "sec-svc",
        "DB_PASSWORD",
        "--value-stdin",
        "--protected",
        "--environment",
        "production",
        env=env,
        stdin="cli-db-password\n",
    )
    assert set_one.returncode == 0, set_one.stderr
    assert "protected secret DB_PASSWORD of sec-svc for production set" in set_one.stdout
    listed = json.loads(run_obeya("secret", "list", "sec-svc", "--json", env=env).stdout)
    assert [(s["name"], s["environment"], s["protected"]) for s in listed] == [
        ("DB_PASSWORD", "production", True)
    ]
    assert "cli-db-password" not in json.dumps(listed)
    bad = run_obeya(
        "secret",
        "set",
        "sec-svc",
        "X_TOKEN",
        "--value-stdin",
        "--environment",
        "no such!",
        env=env,
        stdin="some-value\n",
    )
    assert bad.returncode == 2 and "environment" in bad.stderr
    refs = run_obeya(
        "pipeline",
        "settings",
        "sec-svc",
        "--protected-branches",
        "release/*,hotfix/*",
        "--protected-tags",
        "v*",
        "--json",
        env=env,
    )
    assert refs.returncode == 0, refs.stderr
    shown = json.loads(refs.stdout)
    assert (shown["protected_branches"], shown["protected_tags"]) == (
        ["hotfix/*", "release/*"],
        ["v*"],
    )
    gone = run_obeya(
        "secret", "delete", "sec-svc", "DB_PASSWORD", "--environment", "production", env=env
    )
    assert gone.returncode == 0, gone.stderr
    assert json.loads(run_obeya("secret", "list", "sec-svc", "--json", env=env).stdout) == []
