"""The admin verbs as a user runs them: real `obeya` processes on a fresh data dir."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.processes import clean_env, fresh_postgres_database, obeya_server, run_obeya

pytestmark = pytest.mark.e2e


@pytest.fixture
def env(tmp_path):
    return clean_env(tmp_path / "data")


def test_version(env):
    result = run_obeya("--version", env=env)
    assert result.returncode == 0
    assert result.stdout.startswith("obeya ")


def test_serve_get_health_on_a_fresh_embedded_database(env, tmp_path):
    result = run_obeya("serve", "--get", "/api/health", env=env)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["status"] == "ok" and body["database"] == "sqlite" and body["version"]
    # It migrated the embedded database itself, in WAL mode.
    db = sqlite3.connect(tmp_path / "data" / "obeya.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT count(*) FROM django_migrations").fetchone()[0] > 5
    # And kept a generated secret key, private to its owner.
    key_file = tmp_path / "data" / "secret_key"
    assert len(key_file.read_text()) >= 50
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_serve_get_exits_1_on_a_non_2xx(env):
    result = run_obeya("serve", "--get", "/api/services", env=env)
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "unauthenticated"


def test_createuser_and_token_create(env):
    made = run_obeya(
        "createuser",
        "ops",
        "--admin",
        "--password-stdin",
        env=env,
        stdin="a long enough password\n",
    )
    assert made.returncode == 0, made.stderr
    token = run_obeya("token", "create", "--user", "ops", "--scope", "read", "--days", "7", env=env)
    assert token.returncode == 0, token.stderr
    secret = token.stdout.strip().splitlines()[-1]
    assert secret.startswith("obeya_") and " " not in secret
    health = run_obeya("serve", "--get", "/api/events?kind=token.", env=env)
    assert health.returncode == 1  # the events API needs a token: --get is anonymous


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("createuser", "ops", "--password-stdin"), "\n", "password is empty"),
        (("createuser", "bad name", "--password-stdin"), "a long enough password\n", "not valid"),
        (("token", "create", "--user", "ghost"), None, 'no user named "ghost"'),
        (("token", "revoke", "999"), None, "no token with id 999"),
    ],
)
def test_admin_verb_errors_are_one_line_and_exit_2(env, args, stdin, message):
    result = run_obeya(*args, env=env, stdin=stdin)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("obeya: ")


def test_token_days_out_of_range(env):
    run_obeya("createuser", "ops", "--password-stdin", env=env, stdin="a long enough password\n")
    result = run_obeya("token", "create", "--user", "ops", "--days", "400", env=env)
    assert result.returncode == 2 and "1 to 365 days" in result.stderr


def test_unsupported_database_url_is_one_line(env):
    env["OBEYA_DATABASE_URL"] = "mysql://db/obeya"
    result = run_obeya("serve", "--get", "/api/health", env=env)
    assert result.returncode == 2
    assert "unsupported scheme" in result.stderr and "Traceback" not in result.stderr


def test_demo_loads_once_and_prints_the_login(env):
    first = run_obeya("demo", env=env)
    assert first.returncode == 0, first.stderr
    assert "service hello-service" in first.stdout and "sign in as admin / " in first.stdout
    password = first.stdout.split("sign in as admin / ")[1].split()[0]
    second = run_obeya("demo", env=env)
    assert "service hello-service" not in second.stdout
    assert f"admin / {password}" in second.stdout


def test_config_lists_every_setting_and_hides_secrets(env):
    env["OBEYA_SECRET_KEY"] = "s3cret-value-that-must-not-show"
    result = run_obeya("config", env=env)
    assert result.returncode == 0
    assert "OBEYA_DATA_DIR" in result.stdout and "OBEYA_DATABASE_URL" in result.stdout
    assert "s3cret-value" not in result.stdout


def test_config_says_what_confines_users_commands(env):
    result = run_obeya("config", env=env)
    assert "Users' commands run in: bubblewrap (" in result.stdout
    env["OBEYA_SANDBOX"] = "off"
    result = run_obeya("config", env=env)
    assert "Users' commands run in: off (OBEYA_SANDBOX=off)" in result.stdout


def test_serve_with_the_sandbox_off_says_so_and_records_it(env):
    env["OBEYA_SANDBOX"] = "off"
    with obeya_server(env) as url:
        assert httpx.get(f"{url}/api/health").status_code == 200
    logs = list(Path(env["OBEYA_DATA_DIR"]).glob("serve-*.log"))
    assert "Users' commands run in: off" in logs[0].read_text()
    database = Path(env["OBEYA_DATA_DIR"]) / "obeya.sqlite3"
    with sqlite3.connect(database) as db:
        kinds = [row[0] for row in db.execute("SELECT kind FROM core_event")]
    assert "sandbox.turned_off" in kinds


@pytest.mark.skipif(
    not os.environ.get("OBEYA_TEST_POSTGRES_URL"), reason="needs OBEYA_TEST_POSTGRES_URL"
)
def test_serve_refuses_an_old_postgres_schema_until_migrated(env):
    with fresh_postgres_database(os.environ["OBEYA_TEST_POSTGRES_URL"]) as url:
        env["OBEYA_DATABASE_URL"] = url
        refused = run_obeya("serve", "--get", "/api/health", env=env)
        assert refused.returncode == 2
        assert "run: obeya migrate" in refused.stderr
        assert run_obeya("migrate", env=env).returncode == 0
        served = run_obeya("serve", "--get", "/api/health", env=env)
        assert served.returncode == 0, served.stderr
        assert json.loads(served.stdout)["database"] == "postgresql"


def test_setpassword_and_token_list(env):
    run_obeya("createuser", "ops", "--password-stdin", env=env, stdin="a long enough password\n")
    changed = run_obeya(
        "setpassword", "ops", "--password-stdin", env=env, stdin="another long one 7\n"
    )
    assert changed.returncode == 0, changed.stderr
    weak = run_obeya("setpassword", "ops", "--password-stdin", env=env, stdin="abc\n")
    assert weak.returncode == 2 and "too short" in weak.stderr
    made = run_obeya("token", "create", "--user", "ops", "--name", "deploy-bot", env=env)
    assert "token id " in made.stderr
    listed = json.loads(run_obeya("token", "list", "--user", "ops", "--json", env=env).stdout)
    assert [t["name"] for t in listed] == ["deploy-bot"]
    assert made.stdout.strip() not in json.dumps(listed)


def test_malformed_runner_count_names_the_setting(env):
    env["OBEYA_RUNNERS"] = "abc"
    result = run_obeya("config", env=env)
    assert result.returncode == 2
    assert "OBEYA_RUNNERS must be a whole number" in result.stderr


def test_a_web_worker_count_below_one_is_refused(env):
    env["OBEYA_WEB_WORKERS"] = "0"
    result = run_obeya("config", env=env)
    assert result.returncode == 2
    assert "OBEYA_WEB_WORKERS must be auto or a whole number of 1 or more, not '0'" in result.stderr
    del env["OBEYA_WEB_WORKERS"]
    result = run_obeya("serve", "--workers", "0", env=env)
    assert result.returncode == 2
    assert "--workers must be 1 or more, not 0" in result.stderr


def test_serve_names_the_address_it_cannot_listen_on(env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_obeya("serve", "--port", str(port), "--no-runners", env=env)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr


def test_a_runner_without_bubblewrap_refuses_to_start_and_says_what_to_install(env, tmp_path):
    env["PATH"] = str(tmp_path / "no-tools-here")  # no bwrap to be found
    work = tmp_path / "work"
    result = run_obeya(
        "runner",
        "--server",
        "http://127.0.0.1:9",
        "--token",
        "t",
        "--work-dir",
        str(work),
        env=env,
    )
    assert result.returncode == 2
    assert "apt-get install bubblewrap" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_sandbox_setting_is_one_line_and_exit_2(env):
    env["OBEYA_SANDBOX"] = "sometimes"
    result = run_obeya("runner", "--server", "http://127.0.0.1:9", "--token", "t", env=env)
    assert result.returncode == 2
    assert "OBEYA_SANDBOX must be on or off" in result.stderr
