"""The notifications panel of the Operations tab (§3.1.5): the channels that hear a
service's incidents, andon and failed deployments, how their last delivery went, the forms
that add a webhook or an e-mail channel and remove one; and the page of one channel with
its delivery log, every try of every delivery.

Every action goes through ``obeya.ops.notify``. A refusal shows the tab again with the
message beside the refused form and what was typed kept, except the secret. No page is
given a channel's secret: rows are built here without it, so no template can show it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from obeya.catalog import services as catalog
from obeya.core.actors import Actor, actor_for_request
from obeya.core.errors import NotFound, ObeyaError
from obeya.core.roles import Permission
from obeya.ops import notify, views

LOG_DELIVERIES = 100  # the newest deliveries listed on a channel's page
FORMS = {"webhook": "webhook", "email": "email"}  # the channel kind → its form on the tab


@dataclass(frozen=True)
class Shown:
    """A delivery's state as people read it: an icon and words; the tone's colour repeats them."""

    tone: str  # a ``status-…`` class
    icon: str
    words: str


SHOWN = {
    "delivered": Shown("succeeded", "✓", "delivered"),
    "pending": Shown("running", "◐", "retrying"),
    "failed": Shown("failed", "✗", "given up"),
}
NOT_TRIED = Shown("running", "…", "not tried yet")
NEVER = Shown("", "·", "nothing sent yet")


def delivery_shown(delivery: Any) -> Shown:
    if delivery is None:
        return NEVER
    if delivery.status == "pending" and not delivery.attempts:
        return NOT_TRIED
    return SHOWN.get(delivery.status, SHOWN["failed"])


def target(channel: Any) -> str:
    """Where a channel sends: a webhook's host (its path may hold a token), or the list."""
    if channel.kind == "email":
        return ", ".join(channel.recipients)
    parts = urlsplit(notify.channel_url(channel))
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def channel_row(actor: Actor, channel: Any, *, last: bool = True) -> dict[str, Any]:
    """A channel as the pages show it: never its secret, only whether it has one."""
    service = channel.service
    newest = notify.deliveries_of(channel).first() if last else None
    return {
        "id": channel.pk,
        "name": channel.name,
        "kind": channel.kind,
        "kind_words": "webhook" if channel.kind == "webhook" else "e-mail",
        "target": target(channel),
        "has_secret": bool(channel.secret),
        "kinds": list(channel.kinds),
        "enabled": channel.enabled,
        "created_at": channel.created_at,
        "every_service": service is None,
        "last": newest,
        "last_shown": delivery_shown(newest),
        "can_delete": catalog.can(actor, service, Permission.CONFIGURE_MONITORING)
        if service is not None
        else actor.is_admin,
    }


def panel(actor: Actor, service: Any) -> dict[str, Any]:
    """The ``notifications`` context of the Operations tab: this service's channels, then
    those every service's events go to."""
    own = notify.list_channels(service.slug).select_related("service")
    every = notify.list_channels().filter(service__isnull=True)
    return {
        "notifications": {
            "channels": [channel_row(actor, c) for c in [*own, *every]],
            "notified": notify.NOTIFIED,
            "can_configure": catalog.can(actor, service, Permission.CONFIGURE_MONITORING),
        },
        "webhook_values": {"kinds": []},
        "email_values": {"kinds": []},
    }


# ---- actions -----------------------------------------------------------------------------


def recipients(text: str) -> list[str]:
    """Addresses typed one a line or separated by commas, semicolons or spaces."""
    return [part for part in re.split(r"[\s,;]+", text) if part]


def typed(form: QueryDict) -> dict[str, Any]:
    """What was typed into a channel form, to show again: every field but the secret."""
    return {
        "name": form.get("name", ""),
        "url": form.get("url", ""),
        "recipients": form.get("recipients", ""),
        "kinds": form.getlist("kinds"),
    }


@login_required
@require_POST
def channel_new(request: HttpRequest, slug: str) -> HttpResponse:
    kind = request.POST.get("kind", "")
    try:
        channel = notify.create_channel(
            actor_for_request(request),
            slug,
            request.POST.get("name", ""),
            kind,
            url=request.POST.get("url", "").strip(),
            secret=request.POST.get("secret", ""),
            recipients=recipients(request.POST.get("recipients", "")),
            kinds=request.POST.getlist("kinds"),
        )
    except ObeyaError as error:
        form = FORMS.get(kind, "webhook")
        return views._tab_refused(request, slug, error, form, typed(request.POST))
    what = "every notified event" if not channel.kinds else ", ".join(channel.kinds)
    messages.success(
        request, f"Channel {channel.name} set up: it is told about {what} from now on."
    )
    return redirect(f"/services/{slug}/operations/#channel-{channel.pk}")


def _of_service(slug: str, channel_id: int) -> Any:
    """The channel, if this service's page may show it: its own, or one for every service."""
    channel = notify.get_channel(channel_id)
    if channel.service is not None and channel.service.slug != slug:
        raise NotFound(f"{slug!r} has no channel with id {channel_id}", field="channel")
    return channel


@login_required
@require_POST
def channel_delete(request: HttpRequest, slug: str, channel_id: int) -> HttpResponse:
    try:
        channel = _of_service(slug, channel_id)
        notify.delete_channel(actor_for_request(request), channel.pk)
    except ObeyaError as error:
        return views._tab_refused(request, slug, error, "channels", {"id": channel_id})
    messages.success(request, f"Channel {channel.name} removed, with its delivery log.")
    return redirect(f"/services/{slug}/operations/#notifications")


# ---- one channel -------------------------------------------------------------------------


def _delivery_row(delivery: Any) -> dict[str, Any]:
    return {
        "delivery": delivery,
        "shown": delivery_shown(delivery),
        "tries": list(delivery.tries.all()),
    }


@login_required
def channel_detail(request: HttpRequest, slug: str, channel_id: int) -> HttpResponse:
    try:
        service = catalog.get_service(slug)
        channel = _of_service(slug, channel_id)
    except ObeyaError as error:
        return views.not_found(request, error)
    actor = actor_for_request(request)
    deliveries = notify.deliveries_of(channel)
    return render(
        request,
        "ops/channel.html",
        {
            "service": service,
            "channel": channel_row(actor, channel, last=False),
            "deliveries": [_delivery_row(d) for d in deliveries[:LOG_DELIVERIES]],
            "total": deliveries.count(),
            "shown_at_most": LOG_DELIVERIES,
            "max_attempts": notify.MAX_ATTEMPTS,
            "backoff": notify.BACKOFF_S,
        },
    )
