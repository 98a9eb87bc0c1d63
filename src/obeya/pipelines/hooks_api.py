"""Webhook routes: push notifications under /api/hooks/, and the secret and deliveries of a service.

The hook routes take no token or session (``auth=None``): the signature over the body is
the authentication, checked in ``hooks.receive_webhook`` before anything is written.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from ninja import Router, Schema, Status
from ninja.errors import HttpError
from ninja.pagination import LimitOffsetPagination, paginate

from obeya.core.actors import actor_for_request, system_actor
from obeya.pipelines import hooks
from obeya.pipelines.models import WebhookDelivery

router = Router(tags=["webhooks"])

_STATUS = {
    hooks.Outcome.STARTED: 201,
    hooks.Outcome.DUPLICATE: 200,
    hooks.Outcome.PONG: 200,
    hooks.Outcome.IGNORED: 202,
    hooks.Outcome.FAILED: 202,
}
_ANSWERS = {200: dict[str, Any], 201: dict[str, Any], 202: dict[str, Any]}


class DeliveryOut(Schema):
    id: int
    provider: str
    delivery_id: str
    received_at: datetime
    ref: str
    sha: str
    run: int | None
    outcome: str

    @staticmethod
    def resolve_run(delivery: WebhookDelivery) -> int | None:
        return delivery.run.number if delivery.run else None


class SecretOut(Schema):
    secret: str
    urls: dict[str, str]


def _raw_body(request: HttpRequest) -> bytes:
    """The body exactly as sent (the signature covers these bytes), at most 5 MB."""
    too_large = f"the body is over {hooks.MAX_BODY_BYTES // (1024 * 1024)} MB: not a push payload"
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > hooks.MAX_BODY_BYTES:
        raise HttpError(413, too_large)
    # Read from the stream, not request.body, whose smaller Django limit would answer 400.
    body = request.read(hooks.MAX_BODY_BYTES + 1)
    if len(body) > hooks.MAX_BODY_BYTES:
        raise HttpError(413, too_large)
    return body


def _receive(request: HttpRequest, provider: str, slug: str) -> Status[Any]:
    body = _raw_body(request)
    sender = replace(system_actor(), ip=request.META.get("REMOTE_ADDR") or None)
    received = hooks.receive_webhook(sender, provider, slug, request.headers, body)
    answer: dict[str, Any] = {
        "ok": received.outcome != hooks.Outcome.FAILED,
        "outcome": received.message,
        "run": received.run.number if received.run else None,
    }
    if received.outcome in {hooks.Outcome.DUPLICATE, hooks.Outcome.IGNORED}:
        answer[received.outcome.value] = True
    return Status(_STATUS[received.outcome], answer)


@router.post(
    "/hooks/{slug}/github",
    auth=None,
    response=_ANSWERS,
    url_name="hook_github",
    summary="GitHub push webhook (X-Hub-Signature-256 over the raw body)",
)
def github_hook(request: HttpRequest, slug: str) -> Status[Any]:
    return _receive(request, "github", slug)


@router.post(
    "/hooks/{slug}/gitlab",
    auth=None,
    response=_ANSWERS,
    url_name="hook_gitlab",
    summary="GitLab push webhook (X-Gitlab-Token)",
)
def gitlab_hook(request: HttpRequest, slug: str) -> Status[Any]:
    return _receive(request, "gitlab", slug)


@router.post(
    "/hooks/{slug}/generic",
    auth=None,
    response=_ANSWERS,
    url_name="hook_generic",
    summary='Generic push webhook: {"ref", "after"} signed in X-Obeya-Signature',
)
def generic_hook(request: HttpRequest, slug: str) -> Status[Any]:
    return _receive(request, "generic", slug)


@router.post(
    "/services/{slug}/webhook-secret",
    response=SecretOut,
    summary="Set a new webhook secret; it is shown once, with the hook URLs",
)
def rotate_webhook_secret(request: HttpRequest, slug: str) -> dict[str, Any]:
    secret = hooks.rotate_webhook_secret(actor_for_request(request, "api"), slug)
    urls = {
        provider: request.build_absolute_uri(reverse(f"api:hook_{provider}", args=[slug]))
        for provider in hooks.PROVIDERS
    }
    return {"secret": secret, "urls": urls}


@router.get(
    "/services/{slug}/webhook-deliveries",
    response=list[DeliveryOut],
    summary="Push notifications received, newest first",
)
@paginate(LimitOffsetPagination)
def list_deliveries(request: HttpRequest, slug: str) -> Any:
    return hooks.list_deliveries(slug)
