"""What every answer says about how a browser may treat it, and who sent the request.

- `SecurityHeadersMiddleware`: a Content-Security-Policy on every answer (the pages load
  scripts, styles and images from this server only and may not be framed), and cookies
  marked ``Secure`` on requests that came over HTTPS (``OBEYA_SECURE_COOKIES=auto``).
  X-Content-Type-Options, Referrer-Policy and X-Frame-Options come from Django's own
  SecurityMiddleware and XFrameOptionsMiddleware (see settings).
- `TrustedProxyMiddleware`: behind ``OBEYA_TRUST_PROXY`` proxies, the client's address is
  the one the nearest of them saw, so sign-in throttling and the audit trail name the
  client and not the proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# No inline script or style anywhere in the pages: everything they run and wear comes from
# /static/. The favicon is a data: image. htmx's indicator styles are off (base.html) so
# it injects no <style> element.
PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# Django Ninja's Swagger UI (/api/docs) loads from a CDN, starts with an inline script and
# styles itself inline; only that page allows them, until it is served from /static/ like the rest.
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_POLICY = "; ".join(
    (
        "default-src 'self'",
        f"script-src 'self' {DOCS_CDN} 'unsafe-inline'",
        f"style-src 'self' {DOCS_CDN} 'unsafe-inline'",
        "img-src 'self' data: https://django-ninja.dev",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
DOCS_PATH = "/api/docs"


class SecurityHeadersMiddleware:
    """Add the Content-Security-Policy, and mark cookies Secure on HTTPS requests."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = DOCS_POLICY if request.path_info == DOCS_PATH else PAGE_POLICY
        response.headers.setdefault("Content-Security-Policy", policy)
        if settings.OBEYA_SECURE_COOKIES == "auto" and request.is_secure():
            for morsel in response.cookies.values():
                morsel["secure"] = True
        return response


def client_address(remote_addr: str, forwarded_for: str, proxies: int) -> str:
    """The client's address as the nearest of ``proxies`` trusted proxies saw it.

    Each proxy appends the address it was called from to X-Forwarded-For, so with N
    proxies the Nth entry from the end is the client; entries before it came from the
    client itself and prove nothing. With fewer entries than proxies, the request did not
    come through them all, and the connection's own address stands.
    """
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if proxies <= 0 or len(hops) < proxies:
        return remote_addr
    try:
        return str(ipaddress.ip_address(hops[-proxies]))
    except ValueError:  # not an address: a proxy that passes on what it was sent
        return remote_addr


class TrustedProxyMiddleware:
    """Set REMOTE_ADDR from X-Forwarded-For when ``OBEYA_TRUST_PROXY`` proxies are in front."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        proxies = int(settings.OBEYA_TRUST_PROXY)
        if proxies:
            request.META["REMOTE_ADDR"] = client_address(
                request.META.get("REMOTE_ADDR", ""),
                request.META.get("HTTP_X_FORWARDED_FOR", ""),
                proxies,
            )
        return self.get_response(request)
