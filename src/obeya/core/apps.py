from typing import Any

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "obeya.core"
    label = "core"
    verbose_name = "Obeya core"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        user_logged_in.connect(_on_login, dispatch_uid="obeya.core.login")
        user_login_failed.connect(_on_login_failed, dispatch_uid="obeya.core.login_failed")


def _on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from obeya.core.actors import Actor
    from obeya.core.services import record_login

    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    record_login(Actor(user=user, ip=ip, channel="web"))


def _on_login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kw: Any
) -> None:
    from obeya.core.actors import Actor
    from obeya.core.services import record_login_failure

    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    record_login_failure(
        Actor(user=None, ip=ip, channel="web"), str(credentials.get("username", ""))
    )
