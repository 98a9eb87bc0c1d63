"""Webhooks: a signed push notification from GitHub, GitLab or any sender starts a run.

The signature is the authentication, so it is checked over the raw body with
``hmac.compare_digest`` before anything is parsed or written (RELIABILITY C2). Senders
retry and people press "redeliver", so the delivery id makes a resent push a no-op: its
row is inserted in its own short transaction before the run starts, and the unique
(service, delivery id) pair lets exactly one of two racing copies through. The run itself
starts outside that transaction, because ``create_run`` fetches the repository first and
no database lock may be held while the network is slow.

A GitHub push carries no timestamp. The generic hook's signature does
(``X-Obeya-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``): a
signature more than ``TOLERANCE_S`` away from the server's clock is refused, and each
signature seen within that window is remembered (``WebhookSignature``), so a captured body
and signature sent again under a fresh delivery id is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import crypto, events
from obeya.core.actors import Actor
from obeya.core.errors import Conflict, InvalidInput, ObeyaError, Unauthenticated
from obeya.core.roles import Permission
from obeya.pipelines import runs
from obeya.pipelines.models import Pipeline, Run, WebhookDelivery, WebhookSignature

MAX_BODY_BYTES = 5 * 1024 * 1024
TOLERANCE_S = 300  # how far a generic signature's t= may be from the server's clock
PROVIDERS = ("github", "gitlab", "generic")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_OUTCOME_LENGTH = WebhookDelivery._meta.get_field("outcome").max_length or 200
_REF_LENGTH = WebhookDelivery._meta.get_field("ref").max_length or 255
_ID_LENGTH = WebhookDelivery._meta.get_field("delivery_id").max_length or 200

# The header that signs the body (or carries the token) and the one naming the delivery.
_SIGNATURE_HEADER = {
    "github": "X-Hub-Signature-256",
    "gitlab": "X-Gitlab-Token",
    "generic": "X-Obeya-Signature",
}
_DELIVERY_HEADERS = {
    "github": ("X-GitHub-Delivery",),
    "gitlab": ("X-Gitlab-Event-UUID", "Idempotency-Key"),
    "generic": ("X-Obeya-Delivery",),
}


class Outcome(StrEnum):
    STARTED = "started"  # a run started
    DUPLICATE = "duplicate"  # this delivery id was seen before: nothing new
    IGNORED = "ignored"  # not a push of a branch (a tag, a deleted branch, another event)
    FAILED = "failed"  # a branch push, but the run could not start (git said why)
    PONG = "pong"  # GitHub's ping when the hook is created


@dataclass(frozen=True)
class Received:
    """What became of one notification, for the route to turn into a status code."""

    outcome: Outcome
    message: str
    run: Run | None = None


@dataclass(frozen=True)
class Push:
    """A verified push: the branch to run, or why there is nothing to run."""

    delivery_id: str
    ref: str
    sha: str
    branch: str = ""
    ignored: str = ""


# ---- verifying (no database writes happen before this passes) -------------------------


def signature(secret: str, body: bytes) -> str:
    """The ``sha256=<hex>`` header value a sender computes over the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    # compare_digest on str refuses non-ASCII text; bytes compare anything in constant time.
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def timed_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The generic hook's ``t=<timestamp>,v1=<hex>`` header value, over "<t>.<raw body>"."""
    signed = str(timestamp).encode() + b"." + body
    return f"t={timestamp},v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _timed_parts(header: str, given: str) -> tuple[int, list[str]]:
    """(t, the v1 signatures) of a generic signature header; Unauthenticated if malformed."""
    fields: dict[str, list[str]] = {}
    for part in given.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value.strip())
    stamps, signatures = fields.get("t", []), fields.get("v1", [])
    if len(stamps) != 1 or not stamps[0].isdigit() or len(stamps[0]) > 12 or not signatures:
        raise Unauthenticated(
            f'{header} must be t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>"> '
            "with the service's webhook secret: the timestamp is signed so that a captured "
            "request cannot be replayed later (see docs/triggers.md)",
            code="bad_signature",
        )
    return int(stamps[0]), signatures


def _check_timed(header: str, secret: str, given: str, body: bytes, now: datetime | None) -> None:
    timestamp, signatures = _timed_parts(header, given)
    expected = timed_signature(secret, timestamp, body).partition(",v1=")[2]
    # Every v1 is compared (in constant time), so which one failed tells nothing.
    matched = [_same(candidate, expected) for candidate in signatures]
    if not any(matched):
        raise Unauthenticated(
            f'{header} does not match the signature of "<t>.<raw body>" with this '
            "service's webhook secret: copy the current secret into the sender",
            code="bad_signature",
        )
    skew = abs((now or datetime.now(UTC)).timestamp() - timestamp)
    if skew > TOLERANCE_S:
        raise Unauthenticated(
            f"{header} was signed at t={timestamp}, {int(skew)} s away from this server's "
            f"clock; signatures are accepted for {TOLERANCE_S} s: sign each delivery when "
            "sending it (and check the sender's clock)",
            code="stale_signature",
        )


def verify(
    provider: str,
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
) -> None:
    """Raise Unauthenticated unless ``headers`` prove the sender knows ``secret``
    (and, for the generic hook, signed this body within ``TOLERANCE_S`` of ``now``)."""
    header = _SIGNATURE_HEADER[provider]
    given = headers.get(header, "")
    if not given:
        raise Unauthenticated(
            f"{header} header missing: set the service's webhook secret in the sender's "
            "webhook settings",
            code="bad_signature",
        )
    if provider == "generic":
        _check_timed(header, secret, given, body, now)
        return
    expected = secret if provider == "gitlab" else signature(secret, body)
    if not _same(given, expected):
        what = "token" if provider == "gitlab" else "signature of the raw body"
        raise Unauthenticated(
            f"{header} does not match the {what} with this service's webhook secret: copy "
            "the current secret into the sender's webhook settings",
            code="bad_signature",
        )


def _secret_of(slug: str) -> str:
    """The service's webhook secret; read only, so a refusal leaves no trace in the database."""
    secret = (
        Pipeline.objects.filter(service__slug=slug).values_list("webhook_secret", flat=True).first()
    )
    if not secret:
        # One answer for "no such service" and "no secret": a stranger learns neither.
        raise Unauthenticated(
            f'service "{slug}" takes no webhooks: it does not exist or has no webhook secret '
            f"(set one with POST /api/services/{slug}/webhook-secret)",
            code="bad_signature",
        )
    return crypto.unseal(secret)


# ---- reading a verified notification ----------------------------------------------------


def _delivery_id(provider: str, headers: Mapping[str, str]) -> str:
    names = _DELIVERY_HEADERS[provider]
    found = next((headers[name].strip() for name in names if headers.get(name, "").strip()), "")
    if not found:
        raise InvalidInput(
            f"{names[0]} header missing: each delivery needs an id, so a resent one is recognised",
            field=names[0],
        )
    if len(found) > _ID_LENGTH:
        raise InvalidInput(f"{names[0]} is longer than {_ID_LENGTH} characters", field=names[0])
    return found


def _payload(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput("the body is not JSON: send the push payload as JSON") from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object with a ref")
    return data


def _push(provider: str, delivery_id: str, data: dict[str, Any]) -> Push:
    ref, after = data.get("ref"), data.get("after") or ""
    if not isinstance(ref, str) or not ref.strip() or len(ref) > _REF_LENGTH:
        raise InvalidInput("the payload needs a ref, such as refs/heads/main", field="ref")
    if not isinstance(after, str) or (after and not _SHA.fullmatch(after)):
        raise InvalidInput("after must be the full sha of the pushed commit", field="after")
    ref = ref.strip()
    if ref.startswith("refs/tags/"):
        return Push(delivery_id, ref, after, ignored=f"tag push ({ref}): runs start for branches")
    if ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
    elif provider == "generic" and not ref.startswith("refs/"):
        branch = ref
    else:
        branch = ""
    if not branch:  # never "" to create_run, which would run the default branch instead
        return Push(delivery_id, ref, after, ignored=f"{ref} is not a branch: nothing to run")
    if data.get("deleted") is True or (after and not after.strip("0")):
        return Push(delivery_id, ref, after, ignored=f"branch {branch} was deleted: nothing to run")
    return Push(delivery_id, ref, after, branch=branch)


def read_push(provider: str, headers: Mapping[str, str], body: bytes) -> Push | Received:
    """The push a verified notification announces, or what to answer when it is no push."""
    if provider == "github":
        event = headers.get("X-GitHub-Event", "")
        if event == "ping":
            return Received(Outcome.PONG, "the webhook works: pushes will start runs")
        if event != "push":
            return Received(Outcome.IGNORED, f"{event or 'unnamed'} event: only push starts runs")
    elif provider == "gitlab":
        event = headers.get("X-Gitlab-Event", "")
        if event not in {"Push Hook", "Tag Push Hook"}:
            return Received(
                Outcome.IGNORED, f"{event or 'unnamed'} event: only Push Hook starts runs"
            )
    return _push(provider, _delivery_id(provider, headers), _payload(body))


# ---- the use cases ------------------------------------------------------------------------


def receive_webhook(
    actor: Actor, provider: str, slug: str, headers: Mapping[str, str], body: bytes
) -> Received:
    """Verify a notification and start a run of the pushed branch, at most once per delivery."""
    if provider not in PROVIDERS:
        raise InvalidInput(f"unknown webhook kind {provider!r}: use {', '.join(PROVIDERS)}")
    verify(provider, _secret_of(slug), headers, body, actor.now())
    push = read_push(provider, headers, body)
    if isinstance(push, Received):
        return push
    digest = ""
    if provider == "generic":
        digest = hashlib.sha256(headers[_SIGNATURE_HEADER[provider]].encode()).hexdigest()
    delivery, first = _claim(actor, provider, slug, push, digest)
    if not first:
        return Received(Outcome.DUPLICATE, delivery.outcome, delivery.run)
    if push.ignored:
        return Received(Outcome.IGNORED, push.ignored)
    try:
        run = runs.create_run(actor, slug, push.branch, trigger="push")
    except ObeyaError as error:
        # An unreachable repository or a vanished branch: the sender cannot fix it and a
        # retry would not help, so it is answered as taken and the reason kept for people.
        _settle(delivery, None, error.message)
        return Received(Outcome.FAILED, error.message)
    except Exception:
        delivery.delete()  # no run and no reason: let the sender's retry try again
        raise
    message = f"run #{run.number} started for {push.branch}"
    _settle(delivery, run, message)
    return Received(Outcome.STARTED, message, run)


def _claim(
    actor: Actor, provider: str, slug: str, push: Push, digest: str = ""
) -> tuple[WebhookDelivery, bool]:
    """Record the delivery; (the earlier row, False) when its id was seen before.

    With ``digest`` (a generic signature's), the signature is remembered in the same
    transaction; seen before under another delivery id, the delivery is a replay.
    """
    service = catalog.get_service(slug)
    try:
        with transaction.atomic():
            if digest:
                _remember_signature(actor, service, push.delivery_id, digest)
            return WebhookDelivery.objects.create(
                service=service,
                provider=provider,
                delivery_id=push.delivery_id,
                received_at=actor.now(),
                ref=push.ref,
                sha=push.sha,
                outcome=(push.ignored or "received: starting a run")[:_OUTCOME_LENGTH],
            ), True
    except IntegrityError:
        earlier = (
            WebhookDelivery.objects.select_related("run")
            .filter(service=service, delivery_id=push.delivery_id)
            .first()
        )
        if earlier is None:  # the first copy failed and let go of its id just now
            raise Conflict(
                f"delivery {push.delivery_id} was being handled and failed: send it again"
            ) from None
        return earlier, False


def _remember_signature(actor: Actor, service: Service, delivery_id: str, digest: str) -> None:
    """Note the signature; Unauthenticated (and the caller's transaction undone) when it
    came before with another delivery id.

    Signatures seen longer ago than twice the tolerance are forgotten: their timestamp
    alone refuses them now.
    """
    now = actor.now()
    WebhookSignature.objects.filter(
        service=service, seen_at__lt=now - timedelta(seconds=2 * TOLERANCE_S)
    ).delete()
    # Of two copies racing, the second waits on the unique index, then reads the first.
    seen, created = WebhookSignature.objects.get_or_create(
        service=service, digest=digest, defaults={"delivery_id": delivery_id, "seen_at": now}
    )
    earlier = seen.delivery_id
    if not created and earlier != delivery_id:
        raise Unauthenticated(
            f"this signature was already used by delivery {earlier}: a replayed request is "
            "refused. Sign each delivery afresh (a new t=) when sending it",
            code="replayed_signature",
        )


def _settle(delivery: WebhookDelivery, run: Run | None, outcome: str) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        run=run, outcome=outcome[:_OUTCOME_LENGTH]
    )


def rotate_webhook_secret(actor: Actor, slug: str) -> str:
    """Give the service a new random webhook secret (the old one stops working) and return it."""
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.CONFIGURE_ENVIRONMENTS)
    secret = secrets.token_hex(32)
    with transaction.atomic():
        pipeline = Pipeline.objects.select_for_update().get(pk=runs.pipeline_of(service).pk)
        replaced = bool(pipeline.webhook_secret)
        pipeline.webhook_secret = crypto.seal(secret)
        pipeline.save(update_fields=["webhook_secret"])
        events.record(
            actor,
            "pipeline.webhook_secret_rotated",
            f"service:{slug}",
            {"replaced": replaced},  # never the secret
            service=slug,
        )
    return secret


def list_deliveries(slug: str) -> QuerySet[WebhookDelivery]:
    """The service's received push notifications, newest first."""
    service = catalog.get_service(slug)
    return WebhookDelivery.objects.filter(service=service).select_related("run", "service")
