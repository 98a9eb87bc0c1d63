"""Template context shared by every page: the navigation that capabilities plug into."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

import obeya


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    prefix: str


# Later capabilities add their top-level pages here (Board, Pipelines, Room, ...).
NAVIGATION: tuple[NavItem, ...] = (
    NavItem("Services", "/services/", "/services"),
    NavItem("Audit", "/audit/", "/audit"),
)


def navigation(request: HttpRequest) -> dict[str, object]:
    path = request.path
    return {
        "nav_items": [(item, path.startswith(item.prefix)) for item in NAVIGATION],
        "obeya_version": obeya.__version__,
    }
