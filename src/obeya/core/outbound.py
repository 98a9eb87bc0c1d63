"""Outbound HTTP that cannot be turned against the inside (RELIABILITY C3).

Monitors, health checks and notification webhooks fetch URLs that people typed. Each
request goes only to an address an allow-list admits: the host name is resolved once,
every address it resolves to is checked (IPv4-mapped IPv6, decimal and octal forms
included, because the resolver turns them into plain addresses first), and the connection
is pinned to the checked address, so a name that resolves differently on a second lookup
(DNS rebinding) cannot slip through. Redirects are not followed blindly: each hop is
checked again. Link-local addresses (cloud metadata at 169.254.169.254) are never allowed.

Besides host names, networks and ``loopback``, the allow-list's ``environments`` entry
admits exact origins (scheme, host and port) that environments declare: at public
addresses any environment's, and at loopback addresses those an administrator approved
(``obeya.deploy.reach`` decides which). An origin admits that one port, never the host's
others.
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
ENVIRONMENTS = "environments"  # the allow-list entry for the origins environments declare
# (scheme, host name in lower case without a trailing dot, port): what an origin admits.
Origin = tuple[str, str, int]


class OutboundRefused(InvalidInput):
    """The URL's address is not on the allow-list."""

    code = "outbound_refused"


class UrlRefused(OutboundRefused):
    """A URL someone saves (an environment's) that the allow-list refuses: 422."""

    status = 422


def _name(host: str) -> str:
    return host.lower().rstrip(".")


def origin_of(url: str) -> Origin | None:
    """The origin of an http(s) URL, or None when it has none (no host, a bad port)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return parts.scheme, _name(parts.hostname), port


def origin_text(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


@dataclass(frozen=True)
class Policy:
    """Where outbound requests may go: host names, networks, loopback, exact origins."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    loopback: bool = False
    described: str = ""
    public_hosts: frozenset[str] = frozenset()  # admitted only at public addresses
    loopback_origins: frozenset[Origin] = frozenset()  # exact origins, at loopback only
    public_origins: frozenset[Origin] = frozenset()  # exact origins, at public addresses only

    def admits(self, host: str, address: IPAddress, *, scheme: str = "", port: int = 0) -> bool:
        if any(address in network for network in NEVER):
            return False
        name = _name(host)
        if address.is_loopback:
            return self.loopback or (scheme, name, port) in self.loopback_origins
        if address.is_global and (scheme, name, port) in self.public_origins:
            return True
        if any(address in network for network in self.networks):
            return True
        return name in self.hosts or (name in self.public_hosts and address.is_global)


def policy_from(
    entries: Iterable[str],
    *,
    public_hosts: Iterable[str] = (),
    approved: Iterable[Origin] = (),
    declared: Iterable[Origin] = (),
) -> Policy:
    """A policy from setting entries: ``environments``, ``loopback``, host names and CIDR
    networks.

    ``public_hosts`` are admitted at public addresses only (a webhook someone typed: never
    the inside). Where the entries name ``environments``: the ``approved`` origins at
    loopback addresses (a local environment's, approved by an administrator) and the
    ``declared`` ones (what environments name) at public addresses, each on its own port.
    """
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    loopback = environments = False
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "loopback":
            loopback = True
            continue
        if entry == ENVIRONMENTS:
            environments = True
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry)
    on_loopback = frozenset(approved) if environments else frozenset()
    shown = [_environments_shown(on_loopback)] if environments else []
    shown += ["loopback"] if loopback else []
    shown += sorted(hosts) + [str(network) for network in networks]
    return Policy(
        frozenset(hosts),
        tuple(networks),
        loopback,
        ", ".join(shown) or "nothing",
        frozenset(_name(host) for host in public_hosts if host),
        on_loopback,
        frozenset(declared) if environments else frozenset(),
    )


def _environments_shown(approved: frozenset[Origin]) -> str:
    if not approved:
        return "environments (public URLs; no approved loopback URL)"
    named = sorted(origin_text(origin) for origin in approved)
    more = f" and {len(named) - 4} more" if len(named) > 4 else ""
    return f"environments (public URLs; on loopback {', '.join(named[:4])}{more})"


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
    scheme = parts.scheme
    refused = [
        address
        for address in addresses
        if not policy.admits(host, address, scheme=scheme, port=port)
    ]
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
