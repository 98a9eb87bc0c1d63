"""The sign-in form, throttled per account and per address (see `obeya.core.signin`)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from obeya.core import signin
from obeya.core.errors import Throttled


class ThrottledAuthenticationForm(AuthenticationForm):
    """Django's sign-in form, refusing to check any password while throttled.

    ``refusal`` holds the reason when it was throttled, for the page and its status.
    """

    refusal: Throttled | None = None

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if not username or not password:
            return super().clean()  # nothing is checked, so nothing is counted
        ip = self.request.META.get("REMOTE_ADDR") if self.request is not None else None
        try:
            attempt = signin.begin(username, ip)
        except Throttled as refusal:
            self.refusal = refusal
            raise ValidationError(refusal.message, code="throttled") from None
        try:
            cleaned = super().clean()
        except ValidationError:
            signin.failed(attempt)
            raise
        signin.succeeded(attempt)
        return cleaned
