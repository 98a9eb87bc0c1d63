"""What an environment's URLs let Obeya reach (RELIABILITY C3).

An environment names URLs Obeya fetches: its health check's, once per target host when
the URL says ``{host}``. Those URLs pass the outbound allow-list (``OBEYA_OUTBOUND_ALLOW``)
when the environment is saved, and again each time they are fetched. They never widen it
beyond themselves: an environment admits its URLs' exact origins (scheme, host, port) for
its health checks and its service's monitors, never the host's other ports.

Under the allow-list entry ``environments`` (the default):

- an origin at a **public** address needs nothing more: any environment may name one;
- an origin on **loopback** is admitted only for this server's own environments: those
  whose target is ``local`` (the release is served on this machine) and whose loopback
  URL an administrator approved, by creating or saving the environment with it (the
  approval is kept on the environment, ``approved_origins``, and lapses when the URL or
  the target changes). Anyone else saving such a URL gets a 422 naming it;
- any other address (a private network, an SSH host's internal name) must be on the
  allow-list itself: a network (10.0.0.0/8) or a host name.

Link-local addresses (cloud metadata) are never reached, whatever the list says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from obeya.core import outbound
from obeya.core.actors import Actor

APPROVE_HINT = (
    "an administrator approves a loopback URL of an environment whose target is local by "
    "saving the environment; other internal addresses must be allowed in "
    "OBEYA_OUTBOUND_ALLOW (see docs/configuration.md)"
)


def address_of(host_name: str) -> str:
    """The address a health URL's ``{host}`` stands for: the target host's name without
    its SSH port (``local`` is this machine, 127.0.0.1)."""
    if host_name == "local":
        return "127.0.0.1"
    return host_name.rsplit(":", 1)[0] if host_name.count(":") == 1 else host_name


def declared_urls(target: Mapping[str, Any] | None, health: Mapping[str, Any] | None) -> list[str]:
    """The URLs an environment makes Obeya fetch: its HTTP health check's, with ``{host}``
    filled in for each target host."""
    if not health or health.get("kind") != "http" or not isinstance(health.get("url"), str):
        return []
    url = str(health["url"])
    if "{host}" not in url:
        return [url]
    target = target or {}
    names = ["local"] if target.get("kind") != "ssh" else list(target.get("hosts") or [])
    return [url.replace("{host}", address_of(str(name))) for name in names]


def _origins(urls: Iterable[str]) -> set[outbound.Origin]:
    return {origin for url in urls if (origin := outbound.origin_of(url)) is not None}


def may_approve(actor: Actor) -> bool:
    """Administrators approve loopback URLs, and so do Obeya itself and the local admin
    CLI (the demo, `obeya` verbs on the server machine)."""
    if actor.token is not None and actor.token.scope == "read":
        return False
    if actor.user is None:
        return actor.channel in {"system", "cli"}
    return actor.is_admin


def approve(
    actor: Actor,
    target: Mapping[str, Any] | None,
    health: Mapping[str, Any] | None,
    approved_before: Iterable[str],
) -> list[str]:
    """Check each URL the environment would make Obeya fetch; the loopback origins that
    stay (or become) approved, as text. Raises UrlRefused (422) naming the URL, the
    address it resolved to and the setting, for a URL the allow-list refuses and
    ``actor`` may not approve."""
    # What is not an http(s) URL at all is for the settings' own check to name.
    urls = [url for url in declared_urls(target, health) if url.startswith(("http://", "https://"))]
    local = (target or {}).get("kind") == "local"
    declared = _origins(urls)
    # An approval holds for the URL it was given to, on a local target only.
    approved = _origins(approved_before) & declared if local else set()
    entries = list(settings.OBEYA_OUTBOUND_ALLOW)
    for url in urls:
        policy = outbound.policy_from(entries, approved=approved, declared=declared)
        try:
            outbound.check(url, policy)
            continue
        except outbound.OutboundRefused as refused:
            if not _approvable(actor, url, local, entries):
                raise outbound.UrlRefused(
                    f"health url: {refused.message}; {APPROVE_HINT}", field="health"
                ) from None
        origin = outbound.origin_of(url)
        if origin is not None:
            approved.add(origin)
    return sorted(outbound.origin_text(origin) for origin in approved)


def _approvable(actor: Actor, url: str, local: bool, entries: list[str]) -> bool:
    """Whether ``actor`` may approve ``url``: an administrator, for a local target, under
    ``environments``, and only a URL whose host is this machine (loopback)."""
    if not (local and may_approve(actor) and outbound.ENVIRONMENTS in entries):
        return False
    try:
        outbound.check(url, outbound.policy_from(["loopback"]))
    except outbound.OutboundRefused:
        return False
    return True


def policy_for(environments: Iterable[Any]) -> outbound.Policy:
    """The allow-list for fetching what ``environments`` (rows with ``target``, ``health``
    and ``approved_origins``) name: the setting, plus their own origins as above."""
    approved: set[outbound.Origin] = set()
    declared: set[outbound.Origin] = set()
    for environment in environments:
        urls = declared_urls(environment.target, environment.health)
        origins = _origins(urls)
        declared |= origins
        if (environment.target or {}).get("kind") == "local":
            approved |= _origins(environment.approved_origins or []) & origins
    return outbound.policy_from(settings.OBEYA_OUTBOUND_ALLOW, approved=approved, declared=declared)
