"""The notifications panel of the Operations tab and a channel's page: channels added and
removed from the forms, refusals beside the form with what was typed kept (never the
secret), and a delivery log drawn from real tries against a real receiver."""

from __future__ import annotations

import html as markup
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from obeya.catalog import services as catalog
from obeya.core import crypto
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.models import User
from obeya.ops import notify, notify_views, views
from obeya.ops import services as ops
from tests.conftest import PASSWORD, actor
from tests.ops.test_notify import SECRET, receiver  # noqa: F401 - the fixture itself

TAB = "/services/shop/operations/"
CHANNELS = TAB + "channels/"


@pytest.fixture
def rita(make_user: Callable[..., User]) -> User:
    """The reliability engineer of "shop": may set up and remove its channels."""
    user = make_user("rita")
    catalog.create_service(actor(user), "shop", "Shop")
    catalog.add_member(actor(user), "shop", "rita", "reliability_engineer")
    return user


@pytest.fixture
def dave(rita: User, make_user: Callable[..., User]) -> User:
    """A developer of "shop": reads the panel and the logs, changes nothing."""
    user = make_user("dave")
    catalog.add_member(actor(rita), "shop", "dave", "developer")
    return user


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def text(response) -> str:
    return markup.unescape(response.content.decode())


def panel_of(response) -> str:
    page = text(response)
    start = page.index('id="notifications"')
    return page[start : page.index("</section>", start)]


WEBHOOK = {
    "kind": "webhook",
    "name": "chatops",
    "url": "https://hooks.example.com/services/T0K3N",
    "secret": SECRET,
    "kinds": ["incident.opened", "andon.pulled"],
}


def test_the_panel_is_registered_once_on_the_tab() -> None:
    assert views.PANELS.count(notify_views.panel) == 1


def test_channels_are_added_shown_and_removed_from_the_tab(rita: User) -> None:
    web = signed_in(rita)
    assert "No channels yet" in panel_of(web.get(TAB))
    response = web.post(CHANNELS + "new/", WEBHOOK, follow=True)
    hook = notify.list_channels("shop").get()
    assert response.redirect_chain[-1][0].endswith(f"#channel-{hook.pk}")
    assert crypto.unseal(hook.secret) == SECRET and hook.kinds == WEBHOOK["kinds"]
    assert crypto.unseal(hook.url) == WEBHOOK["url"]  # both stored encrypted
    assert "Channel chatops set up: it is told about incident.opened, andon.pulled" in text(
        response
    )
    row = panel_of(response)[panel_of(response).index(f'data-channel="{hook.pk}"') :]
    assert "hooks.example.com" in row and "T0K3N" not in row  # the host, not a token path
    assert "signed" in row and "incident.opened, andon.pulled" in row and "✓ yes" in row
    assert "nothing sent yet" in row

    web.post(
        CHANNELS + "new/",
        {"kind": "email", "name": "on-call", "recipients": "a@example.com,\n b@example.com"},
    )
    mail = notify.list_channels("shop").get(name="on-call")
    assert mail.recipients == ["a@example.com", "b@example.com"] and mail.kinds == []
    panel = panel_of(web.get(TAB))
    assert "a@example.com, b@example.com" in panel and "every notified kind" in panel

    response = web.post(f"{CHANNELS}{hook.pk}/delete/", follow=True)
    assert response.redirect_chain[-1][0].endswith("#notifications")
    assert "Channel chatops removed, with its delivery log." in text(response)
    assert [c.name for c in notify.list_channels("shop")] == ["on-call"]
    assert SECRET not in text(response)


def test_a_refused_webhook_keeps_what_was_typed_but_the_secret(rita: User) -> None:
    web = signed_in(rita)
    response = web.post(CHANNELS + "new/", {**WEBHOOK, "secret": "too-short"})
    assert response.status_code == 400
    panel = panel_of(response)
    refusal = panel[panel.index('data-testid="webhook-refused"') :][:200]
    assert "webhook secret: at least 16 characters" in refusal
    form = panel[panel.index('aria-label="New webhook"') :]
    assert 'value="chatops"' in form and f'value="{WEBHOOK["url"]}"' in form
    assert 'name="secret" type="password" value="" required' in form
    assert 'autocomplete="new-password" aria-invalid="true"' in form
    assert 'value="andon.pulled" checked' in form and 'value="incident.resolved">' in form
    assert "too-short" not in text(response)
    assert '<details class="form-details" open>' in panel

    response = web.post(
        CHANNELS + "new/",
        {"kind": "email", "name": "on-call", "recipients": "nobody", "kinds": ["story.moved"]},
    )
    assert response.status_code == 400
    assert "'story.moved' is not notified" in panel_of(response)
    response = web.post(
        CHANNELS + "new/", {"kind": "email", "name": "on-call", "recipients": "nobody"}
    )
    assert response.status_code == 400
    form = panel_of(response)[panel_of(response).index('aria-label="New e-mail channel"') :]
    assert "e-mail recipients: one or more addresses" in panel_of(response)
    assert 'aria-invalid="true">nobody</textarea>' in form and 'value="on-call"' in form
    assert not notify.list_channels("shop").exists()


def test_a_developer_reads_but_is_refused_beside_the_forms(rita: User, dave: User) -> None:
    hook = notify.create_channel(actor(rita), "shop", "chatops", "webhook", **_hook())
    web = signed_in(dave)
    panel = panel_of(web.get(TAB))
    assert 'data-channel="' in panel and "chatops" in panel
    assert 'aria-label="New webhook"' not in panel and "Remove channel" not in panel

    response = web.post(CHANNELS + "new/", WEBHOOK)
    assert response.status_code == 403
    assert "dave may not ops.configure" in panel_of(response)
    response = web.post(f"{CHANNELS}{hook.pk}/delete/")
    assert response.status_code == 403
    refusal = panel_of(response)[panel_of(response).index('data-testid="channels-refused"') :]
    assert "dave may not ops.configure" in refusal[:200]
    assert notify.list_channels("shop").count() == 1
    assert SECRET not in text(response)


def test_unknown_services_and_channels_are_404s(rita: User) -> None:
    web = signed_in(rita)
    catalog.create_service(actor(rita), "cart", "Cart")
    other = notify.create_channel(actor(rita), "cart", "theirs", "webhook", **_hook())
    assert web.post("/services/nope/operations/channels/new/", WEBHOOK).status_code == 404
    assert web.get(f"{CHANNELS}999/").status_code == 404
    assert web.get(f"{CHANNELS}{other.pk}/").status_code == 404  # not this service's
    response = web.post(f"{CHANNELS}{other.pk}/delete/")
    assert response.status_code == 404 and "'shop' has no channel" in panel_of(response)
    assert notify.list_channels("cart").count() == 1


def _hook(url: str = "https://hooks.example.com/x") -> dict[str, str]:
    return {"url": url, "secret": SECRET}


def test_the_delivery_log_shows_every_real_try(rita: User, receiver) -> None:  # noqa: F811
    """Link-local addresses are never allowed: cloud metadata is refused, and said so."""
    url, handler = receiver
    handler.answers = [500]
    clock = ManualClock(timezone.now())
    me = Actor(user=rita, channel="web", clock=clock)
    hook = notify.create_channel(me, "shop", "chatops", "webhook", url=url, secret=SECRET)
    inside = notify.create_channel(
        me, "shop", "meta", "webhook", **_hook("http://169.254.169.254/")
    )
    ops.open_incident(me, "shop", "Checkout down", "sev1")
    assert notify.fan_out(clock=me) == 2
    notify.send_due(clock=me)
    clock.advance(timedelta(seconds=10))
    notify.send_due(clock=me)
    assert [t.status_code for t in notify.deliveries_of(hook).get().tries.all()] == [500, 204]

    web = signed_in(rita)
    row = panel_of(web.get(TAB))
    row = row[row.index(f'data-channel="{hook.pk}"') :]
    assert "✓</span> delivered" in row and "incident.opened" in row

    response = web.get(f"{CHANNELS}{hook.pk}/")
    assert response.status_code == 200
    page = text(response)
    log = page[page.index('id="deliveries"') :]
    assert "incident.opened" in log and "✓</span> delivered" in log and "2 tries" in log
    first, second = log[log.index('data-try="1"') :], log[log.index('data-try="2"') :]
    assert "✗ failed" in first[:300] and ">500<" in first[:300] and "HTTP 500" in first[:300]
    assert "✓ ok" in second[:300] and ">204<" in second[:300]
    assert "127.0.0.1" in page and SECRET not in page

    page = text(web.get(f"{CHANNELS}{inside.pk}/"))
    assert "◐</span> retrying" in page and "2 tries" in page
    assert "Last error: " in page and "link-local" in page and "next try" in page
