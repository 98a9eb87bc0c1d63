"""Notifications: signed webhooks with retries and a delivery log, and e-mail, for real."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from obeya.catalog import services as catalog
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.errors import InvalidInput, PermissionDenied
from obeya.ops import notify
from obeya.ops import services as ops
from tests.conftest import actor

SECRET = "s3cret-s3cret-s3cret"


class Receiver(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        status = type(self).answers.pop(0) if type(self).answers else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(settings: Any) -> Iterator[tuple[str, type[Receiver]]]:
    """A webhook receiver on a loopback port, and an allow-list that lets Obeya reach it
    (`loopback`: the default admits only environments' own URLs)."""
    settings.OBEYA_OUTBOUND_ALLOW = ["loopback"]
    handler = type("R", (Receiver,), {"answers": [], "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def owner(make_user):
    user = make_user("rita")
    catalog.create_service(actor(user), "shop", "Shop")
    catalog.add_member(actor(user), "shop", "rita", "reliability_engineer")
    return user


def test_an_incident_is_posted_signed_and_retried_until_delivered(owner, receiver):
    url, handler = receiver
    clock = ManualClock(timezone.now())
    me = Actor(user=owner, channel="web", clock=clock)
    channel = notify.create_channel(me, "shop", "chatops", "webhook", url=url, secret=SECRET)
    handler.answers = [500, 502]
    ops.open_incident(me, "shop", "Checkout down", "sev1")
    assert notify.fan_out(clock=me) == 1
    assert notify.fan_out(clock=me) == 0  # once per channel and event
    assert notify.send_due(clock=me) == 1
    assert notify.send_due(clock=me) == 0  # not due again before its pause
    clock.advance(timedelta(seconds=10))
    notify.send_due(clock=me)
    clock.advance(timedelta(seconds=60))
    notify.send_due(clock=me)
    delivery = notify.deliveries_of(channel).get()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert [t.status_code for t in delivery.tries.all()] == [500, 502, 204]
    headers, body = handler.received[-1]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Obeya-Signature-256"], expected)
    event = json.loads(body)["event"]
    assert event["kind"] == "incident.opened" and event["data"]["title"] == "Checkout down"


def test_a_webhook_to_the_inside_is_refused_and_given_up_with_the_reason(owner, settings):
    settings.OBEYA_OUTBOUND_ALLOW = []
    clock = ManualClock(timezone.now())
    me = Actor(user=owner, channel="web", clock=clock)
    channel = notify.create_channel(
        me, "shop", "meta", "webhook", url="http://169.254.169.254/hook", secret=SECRET
    )
    ops.open_incident(me, "shop", "Down")
    notify.fan_out(clock=me)
    for _ in range(notify.MAX_ATTEMPTS):
        notify.send_due(clock=me)
        clock.advance(timedelta(hours=1))
    delivery = notify.deliveries_of(channel).get()
    assert delivery.status == "failed" and "link-local" in delivery.last_error
    assert delivery.attempts == notify.MAX_ATTEMPTS


def test_a_public_webhook_host_never_reaches_a_private_address(owner, settings, receiver):
    """The channel's own host is admitted at public addresses only: a name pointing
    inside (here: loopback, not allowed by the setting) is refused."""
    settings.OBEYA_OUTBOUND_ALLOW = []
    url, handler = receiver
    clock = ManualClock(timezone.now())
    me = Actor(user=owner, channel="web", clock=clock)
    port = url.split(":")[2].split("/")[0]
    channel = notify.create_channel(
        me, "shop", "named", "webhook", url=f"http://localhost:{port}/hook", secret=SECRET
    )
    ops.open_incident(me, "shop", "Down")
    notify.fan_out(clock=me)
    notify.send_due(clock=me)
    assert handler.received == []
    assert "not on the allow-list" in notify.deliveries_of(channel).get().last_error


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


def test_an_email_channel_mails_through_the_configured_server(owner, settings):
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.OBEYA_SMTP_URL = f"smtp://127.0.0.1:{port}"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        me = actor(owner)
        notify.create_channel(me, "shop", "oncall", "email", recipients=["oncall@example.com"])
        ops.open_incident(me, "shop", "Checkout down", "sev1")
        notify.fan_out()
        notify.send_due()
    finally:
        controller.stop()
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert message.rcpt_tos == ["oncall@example.com"]
    assert b"incident.opened" in message.content and b"Checkout down" in message.content


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "webhook", "url": "ftp://x", "secret": SECRET}, "url"),
        ({"kind": "webhook", "url": "http://x", "secret": "short"}, "secret"),
        ({"kind": "email", "recipients": ["nobody"]}, "recipients"),
        ({"kind": "pager"}, "kind"),
        ({"kind": "email", "recipients": ["a@b.c"], "kinds": ["story.moved"]}, "kinds"),
    ],
)
def test_bad_channels_are_refused(owner, kwargs, field):
    with pytest.raises(InvalidInput) as refused:
        notify.create_channel(actor(owner), "shop", "x", **kwargs)
    assert refused.value.field == field


def test_only_administrators_set_up_channels_for_every_service(owner, admin):
    with pytest.raises(PermissionDenied):
        notify.create_channel(actor(owner), None, "all", "email", recipients=["a@b.c"])
    notify.create_channel(actor(admin), None, "all", "email", recipients=["a@b.c"])
