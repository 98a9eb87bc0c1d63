"""An environment's URLs pass the outbound allow-list when it is saved (RELIABILITY C3):
naming an internal port in a health URL opens nothing, for its health checks or its
service's monitors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from obeya.core.models import Event, User
from obeya.deploy.models import Environment
from tests.conftest import Api
from tests.deploy.conftest import Shop

PATH = "/services/shop/environments"


def _refused(response: Any, url: str) -> str:
    assert response.status_code == 422, response.body
    error = response.body["error"]
    assert (error["code"], error["field"]) == ("outbound_refused", "health")
    message = str(error["message"])
    assert url in message and "OBEYA_OUTBOUND_ALLOW" in message
    return message


def _health(url: str) -> dict[str, str]:
    return {"kind": "http", "url": url}


@pytest.fixture
def olga(shop: Shop, api_for: Callable[..., Api]) -> Api:
    """The shop's service master (and devops engineer)."""
    return api_for(shop.owner)


@pytest.fixture
def root(admin: User, api_for: Callable[..., Api]) -> Api:
    return api_for(admin)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:5432/", "http://{host}:5432/", "http://[::1]:22/"]
)
def test_a_service_master_cannot_point_an_environment_at_an_internal_port(
    shop: Shop, olga: Api, url: str
) -> None:
    target = {"kind": "local", "root": str(shop.target("db"))}
    made = olga.post(PATH, {"name": "db", "target": target, "health": _health(url)})
    message = _refused(made, url.replace("{host}", "127.0.0.1"))
    assert "resolves to 127.0.0.1" in message or "resolves to ::1" in message
    assert not Environment.objects.filter(name="db").exists()

    changed = olga.patch(f"{PATH}/staging", {"health": _health(url)})
    _refused(changed, url.replace("{host}", "127.0.0.1"))
    assert Environment.objects.get(name="staging").health == {
        "kind": "command",
        "command": "grep -q healthy STATUS",
    }


def test_an_administrator_approves_a_local_url_on_its_own_port_only(
    shop: Shop, olga: Api, root: Api
) -> None:
    approved = root.patch(f"{PATH}/staging", {"health": _health("http://127.0.0.1:8101/health")})
    assert approved.status_code == 200, approved.body
    assert approved.body["approved_origins"] == ["http://127.0.0.1:8101"]
    staging = Environment.objects.get(name="staging")
    assert staging.approved_origins == ["http://127.0.0.1:8101"]
    changed = Event.objects.filter(kind="environment.changed").latest("id").data["changes"]
    assert changed["approved_origins"] == {"from": [], "to": ["http://127.0.0.1:8101"]}

    # The service master keeps working with the approved URL...
    assert olga.patch(f"{PATH}/staging", {"retention": 2}).status_code == 200
    other_path = olga.patch(f"{PATH}/staging", {"health": _health("http://127.0.0.1:8101/ready")})
    assert other_path.status_code == 200, other_path.body
    # ...but the same host on another port is another URL, which nobody approved.
    _refused(
        olga.patch(f"{PATH}/staging", {"health": _health("http://127.0.0.1:5432/health")}),
        "http://127.0.0.1:5432/health",
    )
    _refused(
        olga.post(
            PATH,
            {
                "name": "qa",
                "target": {"kind": "local", "root": str(shop.target("qa"))},
                "health": _health("http://127.0.0.1:8101/health"),  # approved for staging only
            },
        ),
        "http://127.0.0.1:8101/health",
    )
    assert Environment.objects.get(name="staging").approved_origins == ["http://127.0.0.1:8101"]


def test_an_approval_lapses_with_its_url_and_needs_a_local_target(
    shop: Shop, olga: Api, root: Api
) -> None:
    url = "http://127.0.0.1:8101/health"
    assert root.patch(f"{PATH}/staging", {"health": _health(url)}).status_code == 200
    moved = olga.patch(f"{PATH}/staging", {"health": {"kind": "command", "command": "true"}})
    assert moved.status_code == 200
    assert Environment.objects.get(name="staging").approved_origins == []
    _refused(olga.patch(f"{PATH}/staging", {"health": _health(url)}), url)

    # A loopback URL of a release served elsewhere (SSH) is not this machine's to approve.
    ssh = {"kind": "ssh", "root": "/srv/shop", "hosts": ["web1.example:22"]}
    _refused(root.post(PATH, {"name": "remote", "target": ssh, "health": _health(url)}), url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.1.2.3:8080/health", "not on the allow-list"),
    ],
)
def test_an_administrator_approves_nothing_but_this_machine(
    shop: Shop, root: Api, url: str, why: str
) -> None:
    target = {"kind": "local", "root": str(shop.target("x"))}
    message = _refused(
        root.post(PATH, {"name": "x", "target": target, "health": _health(url)}), url
    )
    assert why in message


def test_internal_networks_on_the_allow_list_are_open_to_service_masters(
    shop: Shop, olga: Api, settings: Any
) -> None:
    settings.OBEYA_OUTBOUND_ALLOW = ["environments", "10.0.0.0/8"]
    made = olga.patch(f"{PATH}/staging", {"health": _health("http://10.1.2.3:8080/health")})
    assert made.status_code == 200, made.body
    assert Environment.objects.get(name="staging").approved_origins == []


def test_an_administrator_saving_an_environment_approves_its_url_from_before(
    shop: Shop, olga: Api, root: Api
) -> None:
    """A loopback health URL saved before approvals existed was never checked: the
    service master's saves leave it unapproved, an administrator's approves it."""
    url = "http://127.0.0.1:8101/health"
    Environment.objects.filter(name="staging").update(health=_health(url))  # as upgraded
    assert olga.patch(f"{PATH}/staging", {"retention": 3}).status_code == 200
    assert Environment.objects.get(name="staging").approved_origins == []
    assert root.patch(f"{PATH}/staging", {"retention": 4}).status_code == 200
    assert Environment.objects.get(name="staging").approved_origins == ["http://127.0.0.1:8101"]
