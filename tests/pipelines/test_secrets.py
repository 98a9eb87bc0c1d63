"""Secrets as a developer meets them: set over the API, handed out by the runner protocol
only where they belong (protected refs, environments), encrypted at rest, key rotated."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from obeya.catalog import services as catalog
from obeya.core import crypto, sealed
from obeya.core.models import Event
from obeya.deploy import services as deploy
from obeya.pipelines import runners, runs, secrets_store
from tests.conftest import PASSWORD, SYSTEM, actor
from tests.pipelines.conftest import git

ENV_SPEC = """\
stages: [test, release]
jobs:
  unit:
    stage: test
    script: [echo unit]
  to_staging:
    stage: release
    environment: staging
    script: [echo staging]
  to_production:
    stage: release
    environment: production
    script: [echo production]
"""


@pytest.fixture
def team(alice, bob, service):
    """alice is the service master (she registered it); bob a developer."""
    catalog.add_member(actor(alice), "svc", "bob", "developer")
    return service


@pytest.fixture
def runner_client(db) -> Client:
    _, token = runners.register_runner(SYSTEM, "secrets-runner", [])
    return Client(headers={"Authorization": f"Bearer {token}"})


def claim_all(client: Client) -> dict[str, dict[str, str]]:
    """Claim every queued job through the runner protocol: job name -> the secrets it got."""
    got: dict[str, dict[str, str]] = {}
    while True:
        response = client.post(
            "/api/runner/jobs/claim", {"wait": 0}, content_type="application/json"
        )
        if response.status_code == 204:
            return got
        assert response.status_code == 200, response.content
        job = response.json()
        got[job["name"]] = job["secrets"]
        done = client.post(
            f"/api/runner/jobs/{job['id']}/complete",
            {"outcome": "succeeded", "exit_code": 0},
            content_type="application/json",
            headers={"X-Obeya-Lease": job["lease_token"]},
        )
        assert done.status_code == 200, done.content


def put_secret(api: Any, name: str, value: str, **scope: Any) -> None:
    response = api.call("PUT", f"/services/svc/secrets/{name}", {"value": value, **scope})
    assert response.status_code == 204, response.body


def start_run(api: Any, ref: str) -> None:
    response = api.post("/services/svc/runs", {"ref": ref})
    assert response.status_code == 201, response.body


def raw_values(table: str, column: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} ORDER BY id")
        return [str(value) for (value,) in cursor.fetchall()]


def test_a_branch_run_of_an_unprotected_branch_gets_no_protected_secret(
    alice, bob, team, repo, api_for, runner_client
):
    master, developer = api_for(alice), api_for(bob)
    put_secret(master, "API_TOKEN", "plain-api-token")
    put_secret(master, "DEPLOY_KEY", "protected-deploy-key", protected=True)
    listed = master.get("/services/svc/secrets").body
    assert [(s["name"], s["protected"]) for s in listed] == [
        ("API_TOKEN", False),
        ("DEPLOY_KEY", True),
    ]
    git(repo.path, "branch", "feature")
    git(repo.path, "branch", "release/1.0")
    git(repo.path, "tag", "v1.0")
    git(repo.path, "tag", "nightly")

    start_run(developer, "feature")  # anyone may push a branch: no protected secret
    got = claim_all(runner_client)
    assert set(got) == {"build", "unit", "lint"}
    for secrets in got.values():
        assert secrets == {"API_TOKEN": "plain-api-token"}

    start_run(developer, "main")  # the default branch is protected
    for secrets in claim_all(runner_client).values():
        assert secrets == {"API_TOKEN": "plain-api-token", "DEPLOY_KEY": "protected-deploy-key"}

    # More protected refs: only those who manage secrets may widen them.
    refused = developer.call(
        "PUT", "/services/svc/pipeline", {"protected_branches": ["*"], "protected_tags": ["*"]}
    )
    assert refused.status_code == 403
    settings = master.call(
        "PUT",
        "/services/svc/pipeline",
        {"protected_branches": ["release/*"], "protected_tags": ["v*"]},
    )
    assert settings.status_code == 200, settings.body
    assert settings.body["protected_branches"] == ["release/*"]
    for ref, protected in (("release/1.0", True), ("v1.0", True), ("nightly", False)):
        start_run(developer, ref)
        for secrets in claim_all(runner_client).values():
            assert ("DEPLOY_KEY" in secrets) is protected, ref


def test_a_job_for_staging_does_not_get_productions_secret(
    alice, bob, team, repo, api_for, runner_client
):
    repo.commit({"obeya.yml": ENV_SPEC}, "jobs per environment")
    master = api_for(alice)
    put_secret(master, "DB_PASSWORD", "shared-default-pw")
    put_secret(master, "DB_PASSWORD", "staging-db-pw", environment="staging")
    put_secret(master, "DB_PASSWORD", "production-db-pw", environment="production")
    put_secret(master, "PROD_ONLY", "production-only-token", environment="production")
    start_run(api_for(bob), "main")
    got = claim_all(runner_client)
    assert got == {
        "unit": {"DB_PASSWORD": "shared-default-pw"},
        "to_staging": {"DB_PASSWORD": "staging-db-pw"},
        "to_production": {"DB_PASSWORD": "production-db-pw", "PROD_ONLY": "production-only-token"},
    }
    scoped = master.get("/services/svc/secrets").body
    assert [(s["name"], s["environment"]) for s in scoped] == [
        ("DB_PASSWORD", ""),
        ("DB_PASSWORD", "production"),
        ("DB_PASSWORD", "staging"),
        ("PROD_ONLY", "production"),
    ]
    deleted = master.call("DELETE", "/services/svc/secrets/DB_PASSWORD?environment=staging")
    assert deleted.status_code == 204
    assert (
        master.call("DELETE", "/services/svc/secrets/DB_PASSWORD?environment=qa").status_code == 404
    )


def test_a_branch_naming_a_protected_environment_gets_none_of_its_secrets(
    alice, bob, team, repo, api_for, runner_client, tmp_path
):
    # A developer's branch cannot write `environment: production` to reach its secrets.
    deploy.create_environment(
        actor(alice),
        "svc",
        "production",
        protected=True,
        required_approvals=1,
        target={"kind": "local", "root": str(tmp_path / "production")},
    )
    repo.commit({"obeya.yml": ENV_SPEC}, "jobs per environment")
    git(repo.path, "branch", "feature")
    master = api_for(alice)
    put_secret(master, "PROD_TOKEN", "production-scoped-token", environment="production")
    start_run(api_for(bob), "feature")
    assert claim_all(runner_client)["to_production"] == {}
    start_run(api_for(bob), "main")
    assert claim_all(runner_client)["to_production"] == {"PROD_TOKEN": "production-scoped-token"}


def test_the_database_holds_no_plaintext_and_the_key_file_is_apart(alice, team, api_for, settings):
    master = api_for(alice)
    put_secret(master, "API_TOKEN", "plain-text-must-not-be-stored")
    hook = master.post("/services/svc/webhook-secret").body["secret"]
    channel = master.post(
        "/services/svc/channels",
        {
            "name": "chat",
            "kind": "webhook",
            "url": "https://chat.example.com/services/T0K3N-in-path",
            "secret": "channel-signing-secret",
        },
    )
    assert channel.status_code == 201, channel.body
    assert channel.body["url"] == "https://chat.example.com/…"  # the path is a password
    stored = {
        "secret": raw_values("pipelines_secret", "value"),
        "webhook": raw_values("pipelines_pipeline", "webhook_secret"),
        "channel": raw_values("ops_channel", "secret"),
        "channel url": raw_values("ops_channel", "url"),
    }
    for plain, (where, values) in zip(
        (
            "plain-text-must-not-be-stored",
            hook,
            "channel-signing-secret",
            "https://chat.example.com/services/T0K3N-in-path",
        ),
        stored.items(),
        strict=True,
    ):
        assert len(values) == 1 and plain not in values[0], where
        assert values[0].startswith("gAAAAA"), where  # a Fernet token
        assert crypto.unseal(values[0]) == plain
    key_file = settings.DATA_DIR / "keys" / "secrets.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert settings.SECRET_KEY.encode() not in key_file.read_bytes()
    assert all("plain-text-must-not-be-stored" not in str(e.data) for e in Event.objects.all())


def test_a_lost_key_file_gives_an_error_naming_it(alice, team, api_for, settings, runner_client):
    put_secret(api_for(alice), "API_TOKEN", "some-token-value")
    key_file = settings.DATA_DIR / "keys" / "secrets.key"
    key_file.write_bytes(crypto.new_key() + b"\n")  # replaced by another key
    start_run(api_for(alice), "main")
    response = runner_client.post(
        "/api/runner/jobs/claim", {"wait": 0}, content_type="application/json"
    )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "secrets_key" and str(key_file) in error["message"]
    os.unlink(key_file)
    with pytest.raises(crypto.SecretsKeyError, match="is missing"):
        crypto.unseal(raw_values("pipelines_secret", "value")[0])


def test_rotating_the_key_keeps_every_secret_readable_and_changes_every_ciphertext(
    alice, team, api_for, settings, runner_client
):
    master = api_for(alice)
    put_secret(master, "API_TOKEN", "rotate-me-token")
    hook = master.post("/services/svc/webhook-secret").body["secret"]
    master.post(
        "/services/svc/channels",
        {
            "name": "chat",
            "kind": "webhook",
            "url": "https://chat.example.com/services/T0K3N-in-path",
            "secret": "channel-signing-secret",
        },
    )
    columns = [
        ("pipelines_secret", "value"),
        ("pipelines_pipeline", "webhook_secret"),
        ("ops_channel", "secret"),
        ("ops_channel", "url"),
    ]
    before = {column: raw_values(*column) for column in columns}
    key_file = settings.DATA_DIR / "keys" / "secrets.key"
    old_key = key_file.read_bytes().split()[0]

    done = sealed.rotate_key(SYSTEM)

    assert (done.reencrypted, done.resumed, done.dropped_keys) == (4, False, 1)
    after = {column: raw_values(*column) for column in columns}
    for column in columns:
        assert after[column] != before[column], column
    assert [crypto.unseal(v[0]) for v in after.values()] == [
        "rotate-me-token",
        hook,
        "channel-signing-secret",
        "https://chat.example.com/services/T0K3N-in-path",
    ]
    keys = key_file.read_bytes().split()
    assert len(keys) == 1 and keys[0] != old_key
    assert not any(crypto.opens_with(v[0], old_key) for v in after.values())
    event = Event.objects.get(kind="secrets.key_rotated")
    assert event.data == {"reencrypted": 4, "resumed": False, "dropped_keys": 1}
    start_run(master, "main")
    assert claim_all(runner_client)["build"] == {"API_TOKEN": "rotate-me-token"}


def test_an_interrupted_rotation_is_finished_by_running_it_again(alice, team, api_for, settings):
    put_secret(api_for(alice), "API_TOKEN", "half-rotated-token")
    key_file = settings.DATA_DIR / "keys" / "secrets.key"
    old_key = key_file.read_bytes().split()[0]
    new_key = crypto.new_key()
    # Killed after the new key went first into the file, before any value was re-encrypted.
    crypto.write_keys([new_key, old_key])

    done = sealed.rotate_key(SYSTEM)

    assert done.resumed and done.dropped_keys == 1
    assert key_file.read_bytes().split() == [new_key]  # no third key was made
    (value,) = raw_values("pipelines_secret", "value")
    assert crypto.opens_with(value, new_key) and crypto.unseal(value) == "half-rotated-token"


def test_the_secrets_page_sets_and_lists_without_ever_showing_a_value(alice, bob, team):
    page = Client()
    assert page.login(username="bob", password=PASSWORD)
    form = {
        "name": "DEPLOY_KEY",
        "value": "page-set-secret",
        "environment": "production",
        "protected": "on",
    }
    refused = page.post("/services/svc/secrets/", form)
    assert refused.status_code == 403 and b"page-set-secret" not in refused.content
    assert b"Set a secret" not in page.get("/services/svc/secrets/").content  # no form for bob
    page = Client()
    assert page.login(username="alice", password=PASSWORD)
    done = page.post("/services/svc/secrets/", form)
    assert done.status_code == 302
    shown = page.get("/services/svc/secrets/")
    assert b"DEPLOY_KEY" in shown.content and b"production" in shown.content
    assert b"page-set-secret" not in shown.content
    (stored,) = secrets_store.secret_names("svc")
    assert (stored["environment"], stored["protected"]) == ("production", True)
    page.post("/services/svc/secrets/refs/", {"protected_branches": "release/*, hotfix/*"})
    assert runs.pipeline_of(team).protected_branches == ["hotfix/*", "release/*"]
    page.post("/services/svc/secrets/delete/", {"name": "DEPLOY_KEY", "environment": "production"})
    assert secrets_store.secret_names("svc") == []
