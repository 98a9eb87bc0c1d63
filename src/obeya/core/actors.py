"""Who is acting, from where, and by which channel: passed explicitly to every service call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from obeya.core.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from django.http import HttpRequest

    from obeya.core.models import ApiToken, User


@dataclass(frozen=True)
class Actor:
    """The person (or system) behind a change; events record it with the IP and channel."""

    user: User | None
    ip: str | None = None
    channel: str = "system"  # web | api | cli | system
    token: ApiToken | None = None
    clock: Clock = field(default=SYSTEM_CLOCK)

    @property
    def name(self) -> str:
        return self.user.username if self.user is not None else "system"

    @property
    def is_admin(self) -> bool:
        return bool(self.user is not None and self.user.is_superuser)

    def now(self) -> datetime:
        return self.clock.now()


def system_actor(clock: Clock = SYSTEM_CLOCK) -> Actor:
    """The actor for changes Obeya makes by itself (schedulers, reapers, the demo loader)."""
    return Actor(user=None, channel="system", clock=clock)


def actor_for_request(request: HttpRequest, channel: str = "web") -> Actor:
    """The actor behind a web or API request: its user, token (API) and client address."""
    user = getattr(request, "user", None)
    token = getattr(request, "api_token", None)
    is_person = user is not None and user.is_authenticated
    return Actor(
        user=user if is_person else None,
        ip=request.META.get("REMOTE_ADDR") or None,
        channel=channel,
        token=token,
    )
