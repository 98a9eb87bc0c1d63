"""Notification channels over the API: webhooks and e-mail lists, and each channel's
delivery log. Every rule lives in ``ops/notify.py``; a channel's secret is write-only and
no answer carries it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Status
from ninja.pagination import LimitOffsetPagination, paginate

from obeya.core.actors import actor_for_request
from obeya.ops import notify
from obeya.ops.api import Shaped
from obeya.ops.schemas import ChannelIn, ChannelOut, DeliveryOut

router = Router(tags=["operations"])


# ---- bodies ------------------------------------------------------------------------------


def _channel(channel: Any) -> dict[str, Any]:
    """A channel as anyone may see it: whether it has a secret, never the secret."""
    return {
        "id": channel.pk,
        "service": channel.service.slug if channel.service_id else None,
        "name": channel.name,
        "kind": channel.kind,
        "url": notify.channel_url(channel),  # scheme and host: the path may hold a token
        "has_secret": bool(channel.secret),
        "recipients": list(channel.recipients),
        "kinds": list(channel.kinds),
        "enabled": channel.enabled,
        "created_at": channel.created_at,
    }


def _delivery(delivery: Any) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "event": delivery.event_id,
        "event_kind": delivery.event.kind,
        "event_at": delivery.event.at,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "delivered_at": delivery.delivered_at,
        "last_error": delivery.last_error,
        "tries": [
            {
                "at": t.at,
                "ok": t.ok,
                "status_code": t.status_code,
                "detail": t.detail,
                "duration_ms": t.duration_ms,
            }
            for t in delivery.tries.all()
        ],
    }


# ---- notification channels ---------------------------------------------------------------


def _create_channel(request: HttpRequest, slug: str | None, payload: ChannelIn) -> Status[Any]:
    fields = payload.model_dump()
    channel = notify.create_channel(
        actor_for_request(request, "api"), slug, fields.pop("name"), fields.pop("kind"), **fields
    )
    return Status(201, _channel(notify.get_channel(channel.pk)))


@router.get(
    "/channels",
    response=list[ChannelOut],
    summary="Every notification channel, of each service and for all (not paginated)",
)
def list_all_channels(request: HttpRequest) -> list[dict[str, Any]]:
    return [_channel(c) for c in notify.list_channels().select_related("service")]


@router.post(
    "/channels",
    response={201: ChannelOut},
    summary="A channel told about every service (administrators)",
)
def create_global_channel(request: HttpRequest, payload: ChannelIn) -> Status[Any]:
    return _create_channel(request, None, payload)


@router.get(
    "/services/{slug}/channels",
    response=list[ChannelOut],
    summary="A service's notification channels (not paginated); secrets are never shown",
)
def list_channels(request: HttpRequest, slug: str) -> list[dict[str, Any]]:
    return [_channel(c) for c in notify.list_channels(slug).select_related("service")]


@router.post(
    "/services/{slug}/channels",
    response={201: ChannelOut},
    summary="A webhook or e-mail channel for the service's incidents, andon and deployments",
)
def create_channel(request: HttpRequest, slug: str, payload: ChannelIn) -> Status[Any]:
    return _create_channel(request, slug, payload)


@router.delete("/channels/{channel_id}", response={204: None}, summary="Remove a channel")
def delete_channel(request: HttpRequest, channel_id: int) -> Status[None]:
    notify.delete_channel(actor_for_request(request, "api"), channel_id)
    return Status(204, None)


@router.get(
    "/channels/{channel_id}/deliveries",
    response=list[DeliveryOut],
    summary="The channel's delivery log, newest first, with every try",
)
@paginate(LimitOffsetPagination)
def channel_deliveries(request: HttpRequest, channel_id: int) -> Any:
    return Shaped(notify.deliveries_of(notify.get_channel(channel_id)), _delivery)
