"""Notifications (§3.1.5): outgoing webhooks (JSON, HMAC-signed) and e-mail about
incidents, the andon cord and failed deployments, retried, with a delivery log.

Like the incident reactor, the notifier reads the event log: each tick it makes one
delivery per (channel, event) for recent events of the notified kinds (a unique pair, so
a restart or a second server never tells twice), then sends the deliveries that are due,
claiming each with a conditional update. A failed try is retried with growing pauses,
then given up and left in the log with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import QuerySet

from obeya.catalog import services as catalog
from obeya.core import crypto, events, outbound
from obeya.core.actors import Actor, system_actor
from obeya.core.errors import InvalidInput, NotFound, PermissionDenied
from obeya.core.models import Event
from obeya.core.roles import Permission
from obeya.ops.notify_models import Channel, Delivery, DeliveryAttempt

log = logging.getLogger("obeya.ops")
NOTIFIED = (
    "incident.opened",
    "incident.acknowledged",
    "incident.resolved",
    "andon.pulled",
    "andon.released",
    "deployment.failed",
    "deployment.rolled_back",
)
BACKOFF_S = (10, 60, 300, 900)  # pauses after the 1st, 2nd, 3rd and 4th failed try
MAX_ATTEMPTS = len(BACKOFF_S) + 1
LOOKBACK = timedelta(hours=24)
TIMEOUT_S = 10.0
CLAIM_S = 60
TICK_S = 1.0


# ---- channels ----------------------------------------------------------------------------


def _require(actor: Actor, slug: str | None) -> None:
    if slug:
        catalog.require(actor, catalog.get_service(slug), Permission.CONFIGURE_MONITORING)
    elif not actor.is_admin:
        raise PermissionDenied("only administrators set up channels for every service")


def create_channel(
    actor: Actor,
    slug: str | None,
    name: str,
    kind: str,
    *,
    url: str = "",
    secret: str = "",
    recipients: list[str] | None = None,
    kinds: list[str] | None = None,
) -> Channel:
    """A webhook (url, secret) or e-mail (recipients) channel for a service, or for all."""
    _require(actor, slug)
    name = (name or "").strip()
    if not name or len(name) > 63:
        raise InvalidInput("a channel needs a name of 1 to 63 characters", field="name")
    chosen = list(kinds or [])
    unknown = [k for k in chosen if k not in NOTIFIED]
    if unknown:
        raise InvalidInput(
            f"{unknown[0]!r} is not notified: choose from {', '.join(NOTIFIED)}", field="kinds"
        )
    if kind == "webhook":
        if not url.startswith(("http://", "https://")) or not _host(url) or len(url) > 500:
            raise InvalidInput(
                "webhook url: an http:// or https:// address of at most 500 characters",
                field="url",
            )
        if len(secret) < 16:
            raise InvalidInput(
                "webhook secret: at least 16 characters, to sign each body", field="secret"
            )
    elif kind == "email":
        addresses = [r.strip() for r in recipients or [] if r.strip()]
        if not addresses or not all("@" in r for r in addresses):
            raise InvalidInput("e-mail recipients: one or more addresses", field="recipients")
        recipients = addresses
    else:
        raise InvalidInput("channel kind: webhook or email", field="kind")
    service = catalog.get_service(slug) if slug else None
    with transaction.atomic():
        channel = Channel.objects.create(
            service=service,
            name=name,
            kind=kind,
            url=crypto.seal(url) if kind == "webhook" else "",
            secret=crypto.seal(secret) if kind == "webhook" else "",
            recipients=recipients if kind == "email" else [],
            kinds=chosen,
            created_at=actor.now(),
        )
        events.record(
            actor,
            "channel.created",
            f"channel:{channel.pk}",
            {"name": name, "kind": kind, "url": shown_url(url), "kinds": chosen},
            service=slug or "",
        )
    return channel


def list_channels(slug: str | None = None) -> QuerySet[Channel]:
    if slug:
        return Channel.objects.filter(service=catalog.get_service(slug))
    return Channel.objects.all()


def get_channel(channel_id: int) -> Channel:
    try:
        return Channel.objects.select_related("service").get(pk=channel_id)
    except Channel.DoesNotExist:
        raise NotFound(f"no channel with id {channel_id}", field="channel") from None


def delete_channel(actor: Actor, channel_id: int) -> None:
    channel = get_channel(channel_id)
    _require(actor, channel.service.slug if channel.service else None)
    with transaction.atomic():
        events.record(
            actor,
            "channel.deleted",
            f"channel:{channel.pk}",
            {"name": channel.name},
            service=channel.service.slug if channel.service else "",
        )
        channel.delete()


def deliveries_of(channel: Channel) -> QuerySet[Delivery]:
    return (
        Delivery.objects.filter(channel=channel).select_related("event").prefetch_related("tries")
    )


# ---- fan-out and sending -----------------------------------------------------------------


def fan_out(*, clock: Actor | None = None) -> int:
    """Make the deliveries recent events call for; the number made."""
    actor = clock or system_actor()
    channels = list(Channel.objects.filter(enabled=True))
    if not channels:
        return 0
    made = 0
    since = actor.now() - LOOKBACK
    for event in Event.objects.filter(kind__in=NOTIFIED, at__gte=since).order_by("id"):
        for channel in channels:
            if channel.service_id and (
                channel.service is None or channel.service.slug != event.service
            ):
                continue
            if channel.kinds and event.kind not in channel.kinds:
                continue
            if Delivery.objects.filter(channel=channel, event=event).exists():
                continue
            try:
                with transaction.atomic():
                    Delivery.objects.create(
                        channel=channel, event=event, next_attempt_at=actor.now()
                    )
                made += 1
            except IntegrityError:
                continue  # another server made it
    return made


def payload(event: Event) -> dict[str, Any]:
    return {
        "id": event.pk,
        "kind": event.kind,
        "at": event.at.isoformat(),
        "service": event.service,
        "subject": event.subject,
        "actor": event.actor_name,
        "data": event.data,
    }


def signature(secret: str, body: bytes) -> str:
    """The value of X-Obeya-Signature-256: sha256=HMAC-SHA256(secret, raw body) in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def shown_url(url: str) -> str:
    """A webhook URL as people may see it: scheme, host and port. Its path and query often
    hold the token that lets anyone post (chat webhooks), and user:password@ its login."""
    parts = urlsplit(url)
    if not parts.hostname:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if parts.path.strip("/") or parts.query else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


def channel_url(channel: Channel) -> str:
    """The webhook URL of ``channel`` as shown to people (see ``shown_url``)."""
    try:
        return shown_url(crypto.unseal(channel.url))
    except crypto.SecretsKeyError:
        return "(cannot be decrypted: see the secrets key file)"


def _send_webhook(channel: Channel, delivery: Delivery) -> tuple[bool, int | None, str]:
    body = json.dumps({"event": payload(delivery.event)}, sort_keys=True).encode()
    try:
        url = crypto.unseal(channel.url)
        policy = outbound.policy_from(settings.OBEYA_OUTBOUND_ALLOW, public_hosts=[_host(url)])
        response = outbound.request(
            "POST",
            url,
            policy,
            timeout=TIMEOUT_S,
            content=body,
            follow_redirects=False,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Obeya-Notifier",
                "X-Obeya-Event": delivery.event.kind,
                "X-Obeya-Delivery": str(delivery.pk),
                "X-Obeya-Signature-256": signature(crypto.unseal(channel.secret), body),
            },
        )
    except outbound.OutboundRefused as refused:
        return False, None, refused.message
    except Exception as error:  # the other side is down, slow or speaks nonsense
        return False, None, f"{type(error).__name__}: {error}"
    ok = 200 <= response.status_code < 300
    return ok, response.status_code, "" if ok else f"HTTP {response.status_code}"


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _send_email(channel: Channel, delivery: Delivery) -> tuple[bool, int | None, str]:
    if not settings.OBEYA_SMTP_URL:
        return False, None, "no mail server is set: set OBEYA_SMTP_URL"
    event = delivery.event
    subject = f"[Obeya] {event.service or 'obeya'}: {event.kind}"
    lines = [f"{event.kind} at {event.at:%Y-%m-%d %H:%M:%S} UTC by {event.actor_name}", ""]
    lines += [f"{key}: {value}" for key, value in sorted(event.data.items())]
    try:
        send_mail(
            subject,
            "\n".join(lines),
            settings.DEFAULT_FROM_EMAIL,
            list(channel.recipients),
            fail_silently=False,
        )
    except Exception as error:  # the mail server refused or is away
        return False, None, f"{type(error).__name__}: {error}"
    return True, None, ""


def send_due(*, clock: Actor | None = None) -> int:
    """Try the deliveries that are due; the number tried."""
    actor = clock or system_actor()
    now = actor.now()
    due = Delivery.objects.filter(status="pending", next_attempt_at__lte=now).values_list(
        "pk", "next_attempt_at"
    )
    tried = 0
    for pk, at in list(due[:100]):
        taken = Delivery.objects.filter(pk=pk, status="pending", next_attempt_at=at).update(
            next_attempt_at=now + timedelta(seconds=CLAIM_S)
        )
        if not taken:
            continue
        delivery = Delivery.objects.select_related("channel", "event").get(pk=pk)
        started = time.monotonic()
        send = _send_webhook if delivery.channel.kind == "webhook" else _send_email
        ok, code, detail = send(delivery.channel, delivery)
        _record(actor, delivery, ok, code, detail, (time.monotonic() - started) * 1000)
        tried += 1
    return tried


def _record(
    actor: Actor, delivery: Delivery, ok: bool, code: int | None, detail: str, ms: float
) -> None:
    now = actor.now()
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery, at=now, ok=ok, status_code=code, detail=detail[:500], duration_ms=ms
        )
        delivery.attempts += 1
        if ok:
            delivery.status, delivery.delivered_at, delivery.last_error = "delivered", now, ""
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.status, delivery.last_error = "failed", f"gave up: {detail}"[:500]
        else:
            delivery.last_error = detail[:500]
            delivery.next_attempt_at = now + timedelta(seconds=BACKOFF_S[delivery.attempts - 1])
        delivery.save()


def _loop(stop: threading.Event) -> None:
    while not stop.wait(TICK_S):
        try:
            close_old_connections()
            fan_out()
            send_due()
        except Exception:
            log.exception("notifier tick failed")
        finally:
            close_old_connections()


def start() -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(stop,), name="notifier", daemon=True)
    thread.start()
    return stop, thread
