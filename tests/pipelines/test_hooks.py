"""Webhooks over real HTTP with raw bytes: signatures, replays, what starts a run (C2)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from django.test import Client

from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core.models import Event
from obeya.pipelines import hooks
from obeya.pipelines.models import Pipeline, Run, WebhookDelivery
from tests.conftest import actor
from tests.pipelines.conftest import git

ZERO = "0" * 40


@pytest.fixture
def secret(alice, service) -> str:
    return hooks.rotate_webhook_secret(actor(alice), "svc")


@pytest.fixture
def client() -> Client:
    # CSRF enforced as in production: a webhook carries no CSRF token and must not need one.
    return Client(enforce_csrf_checks=True)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(ref: str = "refs/heads/main", after: str = "a" * 40, **extra: Any) -> bytes:
    # Spaced like GitHub's own JSON, so a re-serialised copy differs byte for byte.
    return json.dumps({"ref": ref, "before": ZERO, "after": after, **extra}, indent=2).encode()


def send(client: Client, provider: str, body: bytes, slug: str = "svc", **headers: str) -> Any:
    response = client.post(
        f"/api/hooks/{slug}/{provider}", data=body, content_type="application/json", **headers
    )
    response.body = response.json() if response.content else None
    return response


def github(client: Client, secret: str, body: bytes, delivery: str = "d-1", **headers: str):
    values = {
        "HTTP_X_HUB_SIGNATURE_256": sign(secret, body),
        "HTTP_X_GITHUB_EVENT": "push",
        "HTTP_X_GITHUB_DELIVERY": delivery,
        **headers,
    }
    return send(client, "github", body, **values)


def counts() -> tuple[int, ...]:
    return tuple(
        model.objects.count() for model in (Run, WebhookDelivery, Event, Pipeline, Service)
    )


def test_a_signed_github_push_starts_a_run_of_the_pushed_branch(client, secret, repo):
    git(repo.path, "checkout", "-q", "-b", "feature")
    sha = repo.commit({"f": "1"}, "on feature")
    response = github(client, secret, payload("refs/heads/feature", sha))
    assert response.status_code == 201, response.body
    assert response.body["ok"] is True and response.body["run"] == 1
    run = Run.objects.get()
    assert (run.branch, run.sha, run.trigger, run.triggered_by) == ("feature", sha, "push", None)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.provider, delivery.delivery_id, delivery.run) == ("github", "d-1", run)
    assert (delivery.ref, delivery.sha) == ("refs/heads/feature", sha)
    created = Event.objects.get(kind="run.created")
    assert (created.actor_name, created.channel, created.ip) == ("system", "system", "127.0.0.1")


@pytest.mark.parametrize(
    "case", ["wrong secret", "re-serialised body", "missing header", "unknown service"]
)
def test_a_push_that_is_not_proven_gets_401_and_writes_nothing(client, secret, case):
    body = payload()
    signature, sent, slug = sign(secret, body), body, "svc"
    headers = {"HTTP_X_GITHUB_EVENT": "push", "HTTP_X_GITHUB_DELIVERY": "d-1"}
    if case == "wrong secret":
        signature = sign("not-the-secret", body)
    elif case == "re-serialised body":
        sent = json.dumps(json.loads(body), separators=(",", ":")).encode()
        assert sent != body and json.loads(sent) == json.loads(body)
    elif case == "unknown service":
        slug = "nope"
    if case != "missing header":
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    before = counts()
    response = send(client, "github", sent, slug, **headers)
    assert response.status_code == 401, response.body
    assert response.body["error"]["code"] == "bad_signature"
    assert "X-Hub-Signature-256" in response.body["error"]["message"] or case == "unknown service"
    assert counts() == before


def test_a_service_without_a_secret_takes_no_webhooks(client, service):
    body = payload()
    before = counts()
    response = github(client, "", body)
    assert response.status_code == 401
    assert "webhook-secret" in response.body["error"]["message"]
    assert counts() == before  # not even the pipeline row is created


def test_the_signature_is_compared_in_constant_time(client, secret, monkeypatch):
    calls: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    github(client, secret, payload(), HTTP_X_HUB_SIGNATURE_256="sha256=" + "0" * 64)
    assert calls == [sign(secret, payload()).encode()]


def test_a_replayed_delivery_is_a_no_op(client, secret, repo):
    body = payload(after=repo.commit({"x": "1"}))
    first = github(client, secret, body)
    assert first.status_code == 201
    before = counts()
    again = github(client, secret, body)
    assert again.status_code == 200
    assert again.body["duplicate"] is True and again.body["run"] == 1
    assert counts() == before
    other = github(client, secret, body, delivery="d-2")  # a new delivery of the same push
    assert other.status_code == 201 and other.body["run"] == 2


def test_ping_answers_ok_and_other_events_are_ignored(client, secret):
    before = counts()
    ping = github(
        client, secret, b'{"zen": "Keep it logically awesome."}', HTTP_X_GITHUB_EVENT="ping"
    )
    assert ping.status_code == 200 and ping.body["ok"] is True
    issues = github(client, secret, b"{}", HTTP_X_GITHUB_EVENT="issues")
    assert issues.status_code == 202 and issues.body["ignored"] is True
    assert counts() == before


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (payload(after=ZERO, deleted=True), "was deleted"),
        (payload("refs/tags/v1.0"), "tag push"),
        (payload("refs/heads/"), "not a branch"),
        (payload("refs/pull/1/head"), "not a branch"),
    ],
)
def test_branch_deletions_and_tags_are_recorded_and_start_nothing(client, secret, body, reason):
    response = github(client, secret, body)
    assert response.status_code == 202 and response.body["ignored"] is True
    assert reason in response.body["outcome"]
    assert Run.objects.count() == 0
    delivery = WebhookDelivery.objects.get()
    assert reason in delivery.outcome and delivery.run is None


def test_an_unreachable_repository_is_recorded_and_answered_202(alice, client, secret, tmp_path):
    catalog.update_service(actor(alice), "svc", repository_url=str(tmp_path / "gone"))
    response = github(client, secret, payload())
    assert response.status_code == 202 and response.body["ok"] is False
    assert "git" in response.body["outcome"]
    assert Run.objects.count() == 0
    assert "git" in WebhookDelivery.objects.get().outcome


def test_gitlab_proves_itself_with_its_token(client, secret, repo):
    sha = repo.commit({"g": "1"})
    headers = {"HTTP_X_GITLAB_EVENT": "Push Hook", "HTTP_X_GITLAB_EVENT_UUID": "u-1"}
    before = counts()
    refused = send(client, "gitlab", payload(after=sha), HTTP_X_GITLAB_TOKEN="guess", **headers)
    assert refused.status_code == 401 and counts() == before
    response = send(client, "gitlab", payload(after=sha), HTTP_X_GITLAB_TOKEN=secret, **headers)
    assert response.status_code == 201, response.body
    assert Run.objects.get().sha == sha
    again = send(client, "gitlab", payload(after=sha), HTTP_X_GITLAB_TOKEN=secret, **headers)
    assert again.status_code == 200 and again.body["duplicate"] is True


def test_gitlab_tag_pushes_are_ignored(client, secret):
    response = send(
        client,
        "gitlab",
        payload("refs/tags/v2"),
        HTTP_X_GITLAB_TOKEN=secret,
        HTTP_X_GITLAB_EVENT="Tag Push Hook",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert response.status_code == 202 and Run.objects.count() == 0
    assert WebhookDelivery.objects.get().delivery_id == "k-1"


def sign_timed(secret: str, body: bytes, at: int | None = None) -> str:
    """The generic hook's X-Obeya-Signature, computed as docs/triggers.md tells a sender."""
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def generic(client: Client, body: bytes, signature: str, delivery: str) -> Any:
    return send(
        client, "generic", body, HTTP_X_OBEYA_SIGNATURE=signature, HTTP_X_OBEYA_DELIVERY=delivery
    )


def test_the_generic_hook_takes_a_short_branch_name(client, secret):
    body = json.dumps({"ref": "main"}).encode()
    signature = sign_timed(secret, body)
    before = counts()
    missing = send(client, "generic", body, HTTP_X_OBEYA_SIGNATURE=signature)
    assert missing.status_code == 400 and "X-Obeya-Delivery" in missing.body["error"]["message"]
    assert counts() == before
    response = send(
        client, "generic", body, HTTP_X_OBEYA_SIGNATURE=signature, HTTP_X_OBEYA_DELIVERY="g-1"
    )
    assert response.status_code == 201, response.body
    assert Run.objects.get().branch == "main"


@pytest.mark.parametrize(
    "case", ["no timestamp", "old timestamp", "future timestamp", "timestamp not signed"]
)
def test_a_generic_signature_must_cover_a_fresh_timestamp(client, secret, case):
    body = json.dumps({"ref": "main"}).encode()
    now = int(time.time())
    signature = {
        "no timestamp": sign(secret, body),  # the old untimed sha256=… form
        "old timestamp": sign_timed(secret, body, now - hooks.TOLERANCE_S - 60),
        "future timestamp": sign_timed(secret, body, now + hooks.TOLERANCE_S + 60),
        # A fresh t= glued to a signature made for an old one.
        "timestamp not signed": f"t={now},"
        + sign_timed(secret, body, now - 3600).partition(",")[2],
    }[case]
    before = counts()
    response = generic(client, body, signature, "g-1")
    assert response.status_code == 401, response.body
    message = response.body["error"]["message"]
    assert "X-Obeya-Signature" in message
    if case == "no timestamp":
        assert "t=<unix seconds>" in message
    elif case != "timestamp not signed":
        assert response.body["error"]["code"] == "stale_signature"
        assert f"{hooks.TOLERANCE_S} s" in message
    assert counts() == before


def test_a_generic_signature_within_the_tolerance_is_taken(client, secret):
    body = json.dumps({"ref": "main"}).encode()
    signed_earlier = sign_timed(secret, body, int(time.time()) - hooks.TOLERANCE_S + 30)
    assert generic(client, body, signed_earlier, "g-1").status_code == 201


def test_a_captured_generic_delivery_replayed_under_a_new_id_is_refused(client, secret):
    body = json.dumps({"ref": "main"}).encode()
    signature = sign_timed(secret, body)
    assert generic(client, body, signature, "g-1").status_code == 201
    before = counts()
    replay = generic(client, body, signature, "g-2-attacker")
    assert replay.status_code == 401, replay.body
    assert replay.body["error"]["code"] == "replayed_signature"
    assert "g-1" in replay.body["error"]["message"]
    assert counts() == before
    # The sender's own retry (same delivery id) is still a harmless duplicate…
    again = generic(client, body, signature, "g-1")
    assert again.status_code == 200 and again.body["duplicate"] is True
    # …and a new push, signed afresh, still starts a run.
    fresh = sign_timed(secret, body, int(time.time()) + 1)
    assert generic(client, body, fresh, "g-3").status_code == 201
    assert Run.objects.count() == 2


def test_a_generic_signature_compares_in_constant_time(client, secret, monkeypatch):
    calls: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    body = json.dumps({"ref": "main"}).encode()
    t = int(time.time())
    response = generic(client, body, f"t={t},v1=" + "0" * 64, "g-1")
    assert response.status_code == 401
    assert calls == [sign_timed(secret, body, t).partition(",v1=")[2].encode()]


def test_a_body_over_5_mb_is_refused_before_anything_else(client, secret):
    body = b"{" + b" " * hooks.MAX_BODY_BYTES + b"}"
    before = counts()
    response = github(client, secret, body)
    assert response.status_code == 413 and counts() == before


def test_a_large_push_under_5_mb_is_taken(client, secret):
    # Over Django's own 2.5 MB request-body limit, which must not apply here.
    body = payload(commits=["x" * 1000] * 3000)
    assert 2_700_000 < len(body) < hooks.MAX_BODY_BYTES
    assert github(client, secret, body).status_code == 201


def test_rotating_the_secret_shows_it_once_and_retires_the_old_one(
    alice, bob, api_for, client, secret
):
    catalog.add_member(actor(alice), "svc", "bob", "developer")
    refused = api_for(bob).post("/services/svc/webhook-secret")
    assert refused.status_code == 403
    response = api_for(alice).post("/services/svc/webhook-secret")
    assert response.status_code == 200, response.body
    new = response.body["secret"]
    assert len(new) == 64 and new != secret
    assert response.body["urls"]["github"] == "http://testserver/api/hooks/svc/github"
    assert set(response.body["urls"]) == {"github", "gitlab", "generic"}
    rotated = Event.objects.filter(kind="pipeline.webhook_secret_rotated")
    assert [event.data for event in rotated] == [{"replaced": False}, {"replaced": True}]
    assert all(new not in json.dumps(event.data) for event in Event.objects.all())
    assert github(client, secret, payload(), delivery="old").status_code == 401
    assert github(client, new, payload(), delivery="new").status_code == 201


def test_deliveries_are_listed_newest_first(alice, api_for, client, secret):
    github(client, secret, payload("refs/tags/v1"), delivery="first")
    github(client, secret, payload(), delivery="second")
    listed = api_for(alice).get("/services/svc/webhook-deliveries?limit=1")
    assert listed.status_code == 200
    assert listed.body["count"] == 2
    (newest,) = listed.body["items"]
    assert (newest["delivery_id"], newest["run"], newest["provider"]) == ("second", 1, "github")


def test_a_signed_body_that_is_no_push_gets_400_and_writes_nothing(client, secret):
    before = counts()
    for body in (b"not json", b"[]", b'{"after": "abc"}', payload(after="abc")):
        response = github(client, secret, body)
        assert response.status_code == 400, (body, response.body)
    assert counts() == before


def test_a_crash_while_starting_lets_the_retry_through(client, secret, monkeypatch):
    from obeya.pipelines import runs

    real = runs.create_run

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(runs, "create_run", crash)
    assert github(client, secret, payload()).status_code == 500
    assert WebhookDelivery.objects.count() == 0
    monkeypatch.setattr(runs, "create_run", real)
    assert github(client, secret, payload()).status_code == 201
