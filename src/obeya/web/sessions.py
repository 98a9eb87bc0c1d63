"""Browser sessions: Django's database sessions, read with one plain statement.

Every signed-in page reads its session first; through the ORM, building that query cost
more than running it. What is stored, and how, is Django's own (`django_session`).
"""

from __future__ import annotations

import logging

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.core.exceptions import SuspiciousOperation
from django.db import connection
from django.utils import timezone

from obeya.core import rows


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Session | None:
        """The unexpired session of this key; None (and no key) when there is none."""
        try:
            found = rows.select(
                Session,
                "WHERE t.session_key = %s AND t.expire_date > %s",
                [self.session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
            )
        except SuspiciousOperation as error:  # as Django's own store answers it
            logging.getLogger(f"django.security.{error.__class__.__name__}").warning(str(error))
            found = []
        if found:
            return found[0]
        self._session_key = None
        return None
