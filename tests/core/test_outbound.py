"""Outbound requests go only where the allow-list says (RELIABILITY C3), on real sockets."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from obeya.core import outbound
from obeya.core.outbound import OutboundRefused, policy_from
from obeya.settings import OBEYA_SETTINGS


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.split("to=", 1)[1])
            self.end_headers()
            return
        body = f"host={self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


LOOPBACK = policy_from(["loopback"])
NOTHING = policy_from([])


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::ffff:127.0.0.1]", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "localhost"],
)
def test_loopback_in_any_spelling_is_refused_unless_allowed(host: str, port: int) -> None:
    url = f"http://{host}:{port}/"
    with pytest.raises(OutboundRefused, match="not on the allow-list"):
        outbound.request("GET", url, NOTHING, timeout=2)
    assert outbound.request("GET", url, LOOPBACK, timeout=2).status_code == 200


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[::ffff:169.254.169.254]/"]
)
def test_cloud_metadata_is_never_fetched_even_when_its_network_is_listed(url: str) -> None:
    policy = policy_from(["loopback", "169.254.0.0/16"])
    with pytest.raises(OutboundRefused, match="link-local"):
        outbound.check(url, policy)


@pytest.mark.parametrize(
    "target", ["http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/", "file:///etc/passwd"]
)
def test_each_redirect_hop_is_checked_again(port: int, target: str) -> None:
    with pytest.raises(OutboundRefused):
        outbound.request(
            "GET", f"http://127.0.0.1:{port}/redirect?to={target}", LOOPBACK, timeout=2
        )


def test_a_redirect_inside_the_allow_list_is_followed(port: int) -> None:
    to = f"http://127.0.0.1:{port}/landed"
    response = outbound.request(
        "GET", f"http://127.0.0.1:{port}/redirect?to={to}", LOOPBACK, timeout=2
    )
    assert response.status_code == 200


def test_the_connection_is_pinned_to_the_address_that_was_checked(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that would resolve elsewhere on a second lookup (DNS rebinding) cannot: the
    request connects to the checked address and sends the name as Host. The resolver is
    outside this machine's control, so it is the one thing replaced here."""
    answers = iter(["127.0.0.1", "10.9.9.9"])
    real = socket.getaddrinfo

    def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example":
            return real(next(answers), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    policy = policy_from(["loopback"])
    response = outbound.request("GET", f"http://rebind.example:{port}/", policy, timeout=2)
    assert response.text == f"host=rebind.example:{port}"


def test_credentials_and_other_schemes_are_refused() -> None:
    for url in ("http://user:pw@127.0.0.1/", "ftp://127.0.0.1/", "gopher://127.0.0.1/"):
        with pytest.raises(OutboundRefused):
            outbound.check(url, LOOPBACK)


def test_the_refusal_says_what_is_allowed() -> None:
    policy = policy_from(["loopback", "status.example.com", "10.0.0.0/8"])
    with pytest.raises(OutboundRefused) as refused:
        outbound.check("http://192.168.1.1/", policy)
    assert "allowed: loopback, status.example.com, 10.0.0.0/8" in refused.value.message
    assert policy.admits("x", outbound.ipaddress.ip_address("10.2.3.4"))


def test_a_public_host_is_admitted_at_public_addresses_only() -> None:
    """A webhook's own host (public_hosts) reaches the internet, never the inside."""
    policy = policy_from([], public_hosts=["Hooks.Example.com"])
    assert policy.admits("hooks.example.com", ipaddress.ip_address("93.184.216.34"))
    for inside in ("10.0.0.5", "192.168.1.1", "127.0.0.1", "169.254.169.254", "::1"):
        assert not policy.admits("hooks.example.com", ipaddress.ip_address(inside))
    assert not policy.admits("other.example.com", ipaddress.ip_address("93.184.216.34"))


def test_the_default_allow_list_opens_no_loopback_port(port: int) -> None:
    """Out of the box only environments' own URLs are reached: not every loopback port."""
    default = next(s for s in OBEYA_SETTINGS if s.name == "OBEYA_OUTBOUND_ALLOW").default
    assert default == "environments"
    with pytest.raises(OutboundRefused, match="not on the allow-list"):
        outbound.request("GET", f"http://127.0.0.1:{port}/", policy_from([default]), timeout=2)


def test_an_approved_origin_admits_its_own_scheme_host_and_port_only(port: int) -> None:
    origin = outbound.origin_of(f"http://127.0.0.1:{port}/health")
    assert origin == ("http", "127.0.0.1", port)
    policy = policy_from(["environments"], approved=[origin])
    assert (
        outbound.request("GET", f"http://127.0.0.1:{port}/x", policy, timeout=2).status_code == 200
    )
    for url in (
        f"http://127.0.0.1:{port + 1}/",
        f"https://127.0.0.1:{port}/",
        f"http://localhost:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
    ):
        with pytest.raises(OutboundRefused, match="not on the allow-list"):
            outbound.check(url, policy)
    # Approved loopback origins count only under the `environments` entry.
    with pytest.raises(OutboundRefused):
        outbound.check(f"http://127.0.0.1:{port}/", policy_from([], approved=[origin]))


def test_a_declared_origin_is_admitted_at_public_addresses_only() -> None:
    declared = ("https", "status.example.com", 443)
    policy = policy_from(["environments"], declared=[declared])
    public = ipaddress.ip_address("93.184.216.34")
    assert policy.admits("status.example.com", public, scheme="https", port=443)
    assert not policy.admits("status.example.com", public, scheme="https", port=8443)
    for inside in ("10.0.0.5", "127.0.0.1", "169.254.169.254"):
        address = ipaddress.ip_address(inside)
        assert not policy.admits("status.example.com", address, scheme="https", port=443)
