"""Signing in: Django's model backend, with the signed-in user read in one plain statement
on each request (through the ORM, building the query cost more than running it)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError

from obeya.core import rows
from obeya.core.models import User


class UserBackend(ModelBackend):
    def get_user(self, user_id: Any) -> User | None:
        try:
            key = User._meta.pk.to_python(user_id)
        except ValidationError:  # a session holding something that is no user id
            return None
        found = rows.select(User, "WHERE t.id = %s", [key])
        if not found:
            return None
        return found[0] if self.user_can_authenticate(found[0]) else None
