"""The errors a user of Obeya can meet, mapped to HTTP statuses and CLI exit codes in one place.

    ObeyaError                  any refusal that names the thing and the way out
    ├── InvalidInput            400  the request is malformed or a value is not allowed
    ├── Unauthenticated         401  no credentials, or a token that is unknown, expired, revoked
    ├── PermissionDenied        403  authenticated, but this role or token scope may not do it
    ├── NotFound                404  the named thing does not exist
    ├── Conflict                409  the request is valid but clashes with the current state
    ├── TooLarge                413  the request's body is larger than the route takes
    ├── Unprocessable           422  a value no database can hold: a whole number past 64
    │                                bits, a NUL character, a lone surrogate, a non-finite number
    └── Throttled               429  too many failed attempts: wait, then try again

Services raise these; the API turns them into ``{"error": {"code", "message", "field"}}``,
the web views into a message on the page, and the CLI into one line on stderr and exit 2.
"""

from __future__ import annotations


class ObeyaError(Exception):
    """A refusal with a sentence for the user and a stable machine-readable code."""

    status = 400
    code = "error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class InvalidInput(ObeyaError):
    status = 400
    code = "invalid"


class Unauthenticated(ObeyaError):
    status = 401
    code = "unauthenticated"


class PermissionDenied(ObeyaError):
    status = 403
    code = "forbidden"


class NotFound(ObeyaError):
    status = 404
    code = "not_found"


class Conflict(ObeyaError):
    status = 409
    code = "conflict"


class TooLarge(ObeyaError):
    status = 413
    code = "too_large"


class Unprocessable(ObeyaError):
    status = 422
    code = "unprocessable"


class Throttled(ObeyaError):
    """Refused for a while; ``retry_after`` says how many seconds until it is allowed again."""

    status = 429
    code = "throttled"

    def __init__(self, message: str, *, retry_after: int, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after = retry_after
