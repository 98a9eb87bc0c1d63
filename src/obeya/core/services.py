"""Use cases for users and API tokens. Each is one transaction and records its event."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from obeya.core import events
from obeya.core.actors import Actor
from obeya.core.clock import SYSTEM_CLOCK, Clock
from obeya.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from obeya.core.models import ApiToken, User

TOKEN_PREFIX = "obeya_"  # noqa: S105 (a label, not a secret)
MAX_TOKEN_DAYS = 365
_SCOPE_RANK: dict[str, int] = {"read": 0, "write": 1, "admin": 2}
_USERNAME = re.compile(r"^[\w.@+-]{1,150}\Z")
# Touch last_used_at at most this often, so reads do not turn into writes.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(plaintext: str) -> str:
    """The stored form of a token: tokens are long random strings, so SHA-256 is enough."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _require_admin(actor: Actor, what: str) -> None:
    if actor.user is not None and not actor.is_admin:
        raise PermissionDenied(f"only an administrator may {what}")
    if actor.token is not None and actor.token.scope != ApiToken.Scope.ADMIN:
        raise PermissionDenied(f"{what} needs a token with the admin scope")


def get_user(username: str) -> User:
    try:
        return User.objects.get(username=username)
    except User.DoesNotExist:
        raise NotFound(f'no user named "{username}"', field="username") from None


def list_users() -> QuerySet[User]:
    return User.objects.filter(is_active=True).order_by("username")


def create_user(
    actor: Actor,
    username: str,
    password: str,
    *,
    is_admin: bool = False,
    email: str = "",
    check_password_strength: bool = True,
) -> User:
    """A new person who can sign in. Only an administrator (or the local CLI) may add one."""
    _require_admin(actor, "create users")
    username = username.strip()
    if not _USERNAME.match(username):
        raise InvalidInput(
            f'username "{username}" is not valid: use letters, digits and @/./+/-/_ only',
            field="username",
        )
    if check_password_strength:
        _check_strength(password)
    try:
        with transaction.atomic():
            user = User(username=username, email=email, is_superuser=is_admin, is_staff=is_admin)
            user.set_password(password)
            user.save()
            events.record(
                actor, "user.created", f"user:{username}", {"username": username, "admin": is_admin}
            )
    except IntegrityError:
        raise Conflict(f'a user named "{username}" already exists', field="username") from None
    return user


def _check_strength(password: str, user: User | None = None) -> None:
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise InvalidInput(" ".join(error.messages), field="password") from None


def set_password(
    actor: Actor, user: User, password: str, *, current_password: str | None = None
) -> None:
    """Change a password: your own (proving the current one) or, as an admin, anyone's."""
    if actor.user == user and current_password is not None:
        if not user.check_password(current_password):
            raise InvalidInput("the current password is wrong", field="current_password")
    elif actor.user is not None or actor.channel not in {"cli", "system"}:
        _require_admin(actor, "change another user's password")
    _check_strength(password, user)
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        events.record(actor, "user.password_changed", f"user:{user.username}")


def record_login(actor: Actor) -> None:
    """One ``user.logged_in`` event per successful sign-in (C9)."""
    with transaction.atomic():
        events.record(actor, "user.logged_in", f"user:{actor.name}")


def record_login_failure(actor: Actor, username: str) -> None:
    with transaction.atomic():
        events.record(
            actor, "user.login_failed", f"user:{username[:100]}", {"username": username[:150]}
        )


def create_token(
    actor: Actor,
    owner: User,
    *,
    name: str,
    scope: str = ApiToken.Scope.WRITE,
    days: int = 90,
) -> tuple[ApiToken, str]:
    """Issue a token for ``owner``; returns the row and the plaintext, shown once only."""
    if actor.user != owner:
        _require_admin(actor, "create tokens for another user")
    if scope not in _SCOPE_RANK:
        raise InvalidInput(
            f'unknown token scope "{scope}": use read, write or admin', field="scope"
        )
    if scope == ApiToken.Scope.ADMIN and not owner.is_superuser:
        raise PermissionDenied(
            f'"{owner.username}" is not an administrator, so cannot hold an admin-scope token',
            field="scope",
        )
    if actor.token is not None and _SCOPE_RANK[scope] > _SCOPE_RANK[actor.token.scope]:
        raise PermissionDenied(
            f"a {actor.token.scope}-scope token cannot create a {scope}-scope token",
            field="scope",
        )
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise InvalidInput(
            f"token lifetime of {days} days is not allowed: choose 1 to {MAX_TOKEN_DAYS} days",
            field="days",
        )
    name = name.strip() or "token"
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = actor.now()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=owner,
            name=name[:100],
            prefix=plaintext[: len(TOKEN_PREFIX) + 6],
            token_hash=hash_token(plaintext),
            scope=scope,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        events.record(
            actor,
            "token.created",
            f"token:{token.pk}",
            {"owner": owner.username, "name": token.name, "scope": scope, "days": days},
        )
    return token, plaintext


def list_tokens(actor: Actor, owner: User) -> QuerySet[ApiToken]:
    """``owner``'s tokens; only the owner or an administrator may list them."""
    if actor.user != owner:
        _require_admin(actor, "list another user's tokens")
    return ApiToken.objects.filter(user=owner).select_related("user")


def revoke_token(actor: Actor, token_id: int) -> ApiToken:
    """Revoke a token at once; revoking twice is refused so the log stays one event each."""
    with transaction.atomic():
        try:
            token = ApiToken.objects.select_for_update().select_related("user").get(pk=token_id)
        except ApiToken.DoesNotExist:
            raise NotFound(f"no token with id {token_id}", field="token") from None
        if actor.user != token.user:
            _require_admin(actor, "revoke another user's token")
        if token.revoked_at is not None:
            raise Conflict(f"token {token.prefix}… is already revoked")
        token.revoked_at = actor.now()
        token.save(update_fields=["revoked_at"])
        events.record(
            actor,
            "token.revoked",
            f"token:{token.pk}",
            {"owner": token.user.username, "name": token.name},
        )
    return token


def authenticate_token(plaintext: str, *, clock: Clock = SYSTEM_CLOCK) -> ApiToken:
    """The live token for a bearer secret, or Unauthenticated saying why."""
    token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(plaintext)).first()
    if token is None or not token.user.is_active:
        raise Unauthenticated("the API token is not valid: create one with `obeya token create`")
    now = clock.now()
    if token.revoked_at is not None:
        raise Unauthenticated(f"the API token {token.prefix}… was revoked: create a new one")
    if token.expires_at <= now:
        raise Unauthenticated(
            f"the API token {token.prefix}… expired on {token.expires_at:%Y-%m-%d}: "
            "create a new one"
        )
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def record_unsandboxed(actor: Actor, where: str, description: str) -> None:
    """Note that commands users write run unconfined at ``where`` (``OBEYA_SANDBOX=off``):
    who may do what there changed, so it is an event, every time it starts so."""
    with transaction.atomic():
        events.record(actor, "sandbox.turned_off", where, {"sandbox": description})
