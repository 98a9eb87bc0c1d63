"""Outbound HTTP that cannot be turned against the inside (RELIABILITY C3).

Monitors, health checks and notification webhooks fetch URLs that people typed. Each
request goes only to an address an allow-list admits: the host name is resolved once,
every address it resolves to is checked (IPv4-mapped IPv6, decimal and octal forms
included, because the resolver turns them into plain addresses first), and the connection
is pinned to the checked address, so a name that resolves differently on a second lookup
(DNS rebinding) cannot slip through. Redirects are not followed blindly: each hop is
checked again. Link-local addresses (cloud metadata at 169.254.169.254) are never allowed.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from obeya.core.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
NEVER = (
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, cloud metadata
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("224.0.0.0/4"),
    ipaddress.ip_network("ff00::/8"),
)
MAX_REDIRECTS = 3


class OutboundRefused(InvalidInput):
    """The URL's address is not on the allow-list."""

    code = "outbound_refused"


@dataclass(frozen=True)
class Policy:
    """Where outbound requests may go: host names, networks, and loopback."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    loopback: bool = False
    described: str = ""
    public_hosts: frozenset[str] = frozenset()  # admitted only at public addresses

    def admits(self, host: str, address: IPAddress) -> bool:
        if any(address in network for network in NEVER):
            return False
        if address.is_loopback:
            return self.loopback
        if any(address in network for network in self.networks):
            return True
        name = host.lower().rstrip(".")
        return name in self.hosts or (name in self.public_hosts and address.is_global)


def policy_from(
    entries: Iterable[str], *, extra_hosts: Iterable[str] = (), public_hosts: Iterable[str] = ()
) -> Policy:
    """A policy from setting entries: ``loopback``, host names and CIDR networks.

    ``extra_hosts`` are admitted at any address (a service's own environments);
    ``public_hosts`` only at public ones (a webhook someone typed: never the inside).
    """
    hosts: set[str] = {host.lower() for host in extra_hosts if host}
    networks: list[IPNetwork] = []
    loopback = False
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "loopback":
            loopback = True
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry)
    shown = ["loopback"] if loopback else []
    shown += sorted(hosts) + [str(network) for network in networks]
    return Policy(
        frozenset(hosts),
        tuple(networks),
        loopback,
        ", ".join(shown) or "nothing",
        frozenset(host.lower() for host in public_hosts if host),
    )


@dataclass(frozen=True)
class Pinned:
    """A checked URL and the address its connection must use."""

    url: str
    host: str
    port: int
    address: IPAddress
    scheme: str = "http"
    path: str = field(default="/")


def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise OutboundRefused(f"{host} does not resolve: {error}", field="url") from None
    result: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address not in result:
            result.append(address)
    return result


def check(url: str, policy: Policy) -> Pinned:
    """The pinned target of ``url``, or OutboundRefused saying why and what is allowed."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise OutboundRefused(f"{url}: only http:// and https:// URLs are fetched", field="url")
    if parts.username or parts.password:
        raise OutboundRefused(f"{url}: credentials in the URL are refused", field="url")
    host = parts.hostname or ""
    if not host:
        raise OutboundRefused(f"{url}: no host", field="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise OutboundRefused(
            f"{url}: the port is not a number from 1 to 65535", field="url"
        ) from None
    addresses = _addresses(host, port)
    refused = [address for address in addresses if not policy.admits(host, address)]
    if refused or not addresses:
        why = (
            "link-local (cloud metadata is never fetched)"
            if any(any(a in n for n in NEVER) for a in refused)
            else "not on the allow-list"
        )
        raise OutboundRefused(
            f"{url} is refused: {host} resolves to {refused[0] if refused else 'nothing'}, "
            f"which is {why}; allowed: {policy.described} (OBEYA_OUTBOUND_ALLOW)",
            field="url",
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Pinned(url, host, port, addresses[0], parts.scheme, path)


def _pinned_url(target: Pinned) -> str:
    address = str(target.address)
    literal = f"[{address}]" if ":" in address else address
    return f"{target.scheme}://{literal}:{target.port}{target.path}"


@functools.cache
def _tls() -> ssl.SSLContext:
    """The verifying TLS context all outbound requests share, built on first use: building
    one loads the whole CA bundle, several times the CPU of a loopback check."""
    return httpx.create_ssl_context()


def request(
    method: str,
    url: str,
    policy: Policy,
    *,
    timeout: float,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    follow_redirects: bool = True,
) -> httpx.Response:
    """Send one request through the allow-list; each redirect hop is checked again."""
    for _hop in range(MAX_REDIRECTS + 1):
        target = check(url, policy)
        sent = dict(headers or {})
        default_port = 443 if target.scheme == "https" else 80
        sent["Host"] = (
            target.host if target.port == default_port else f"{target.host}:{target.port}"
        )
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        with httpx.Client(timeout=timeout, follow_redirects=False, verify=_tls()) as client:
            response = client.request(
                method,
                _pinned_url(target),
                content=content,
                headers=sent,
                extensions=extensions,
            )
        location = response.headers.get("location")
        if not (follow_redirects and response.is_redirect and location):
            return response
        url = urljoin(url, location)
        method = "GET" if response.status_code in {301, 302, 303} else method
        content = None if method == "GET" else content
    raise OutboundRefused(f"{url}: more than {MAX_REDIRECTS} redirects", field="url")
