"""Template context shared by every page: the navigation that capabilities plug into."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

import obeya


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    prefix: str


@dataclass(frozen=True)
class ServiceTab:
    """A page of one service: shown as a tab on every page of that service."""

    label: str
    suffix: str  # after /services/<slug>/


# Capabilities add their top-level pages and their service tabs in AppConfig.ready().
NAVIGATION: list[NavItem] = [
    NavItem("Services", "/services/", "/services"),
    NavItem("Audit", "/audit/", "/audit"),
]
SERVICE_TABS: list[ServiceTab] = [ServiceTab("Overview", "")]
# Each returns extra context for a service's pages (e.g. the andon banner), given its slug.
SERVICE_CONTEXT: list[Callable[[str], dict[str, Any]]] = []


def _service_slug(request: HttpRequest) -> str | None:
    match = getattr(request, "resolver_match", None)
    if match is None or not request.path.startswith("/services/"):
        return None
    slug = match.kwargs.get("slug")
    return str(slug) if slug else None


def navigation(request: HttpRequest) -> dict[str, object]:
    path = request.path
    context: dict[str, object] = {
        "nav_items": [(item, path.startswith(item.prefix)) for item in NAVIGATION],
        "obeya_version": obeya.__version__,
    }
    slug = _service_slug(request)
    if slug and getattr(request, "user", None) and request.user.is_authenticated:
        base = f"/services/{slug}/"
        tabs = []
        for tab in SERVICE_TABS:
            url = base + tab.suffix
            active = path == url if not tab.suffix else path.startswith(url)
            tabs.append((tab.label, url, active))
        context["service_slug"] = slug
        context["service_tabs"] = tabs
        for extra in SERVICE_CONTEXT:
            context.update(extra(slug))
    return context
