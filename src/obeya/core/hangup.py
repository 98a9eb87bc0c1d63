"""How a long-polling view learns that its client hung up.

Under ASGI, `obeya.asgi.RequestHandler` listens for the client's disconnect while chosen
views run (`LONG_POLLS`) and sets the request's event; a view that waits (a runner's claim
long-poll) looks at it between waits and stops, rather than hand work to nobody. Elsewhere
(tests, WSGI, the embedded runners' in-process calls) the event is never set.
"""

from __future__ import annotations

import threading
from typing import Any

SCOPE_KEY = "obeya.client_gone"
# Paths whose views wait for something to happen and so outlive a client that goes away.
LONG_POLLS = frozenset({"/api/runner/jobs/claim"})


def watch(scope: dict[str, Any]) -> threading.Event | None:
    """An event in ``scope`` for the handler to set when the client hangs up, if the
    request's view is a long-poll (others finish soon enough not to need one)."""
    if scope.get("path") not in LONG_POLLS:
        return None
    gone = scope[SCOPE_KEY] = threading.Event()
    return gone


def client_gone(request: Any) -> threading.Event:
    """The event the handler sets when ``request``'s client hangs up."""
    found = getattr(request, "scope", None) or {}
    event = found.get(SCOPE_KEY)
    return event if isinstance(event, threading.Event) else threading.Event()
