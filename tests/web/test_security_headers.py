"""Every answer carries a Content-Security-Policy and the other headers that keep a
browser safe; cookies are Secure over HTTPS; behind trusted proxies, the client's own
address and scheme count."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from obeya.core.models import SignInAttempt, User
from tests.conftest import PASSWORD

SRC = Path(__file__).resolve().parents[2] / "src" / "obeya"


def _policy(response: Any) -> dict[str, str]:
    return {
        part.split()[0]: " ".join(part.split()[1:])
        for part in response["Content-Security-Policy"].split(";")
        if part.strip()
    }


@pytest.mark.parametrize(
    ("path", "status"),
    [("/login/", 200), ("/services/", 200), ("/api/health", 200), ("/nowhere/", 404)],
)
def test_every_answer_has_the_policy_and_the_safety_headers(
    alice: User, path: str, status: int
) -> None:
    client = Client()
    if path != "/login/":
        client.force_login(alice)
    response = client.get(path)
    assert response.status_code == status
    policy = _policy(response)
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_the_api_docs_may_load_what_they_load_and_nothing_else(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    response = client.get("/api/docs")
    assert response.status_code == 200
    policy = _policy(response)
    assert policy["frame-ancestors"] == "'none'"
    html = response.content.decode()
    for source in re.findall(r'<script[^>]*\bsrc="([^"]+)"', html):
        assert source.split("/")[2] in policy["script-src"], source
    for source in re.findall(r'<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"', html):
        assert source.split("/")[2] in policy["style-src"], source


def _templates() -> list[Path]:
    return sorted(SRC.glob("*/templates/**/*.html"))


@pytest.mark.parametrize("template", _templates(), ids=lambda path: str(path.relative_to(SRC)))
def test_no_page_has_what_the_policy_refuses(template: Path) -> None:
    """Inline scripts, style attributes and event-handler attributes would be refused."""
    html = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"<style\b", html), "inline <style>"
    assert not re.search(r"\sstyle=", html), "style attribute"
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", html), "event-handler attribute"
    assert "javascript:" not in html


def test_htmx_injects_no_style_element(db: None) -> None:
    assert '"includeIndicatorStyles": false' in Client().get("/login/").content.decode()


def test_cookies_are_secure_over_https_only(alice: User) -> None:
    plain = Client().get("/login/")
    assert not plain.cookies["csrftoken"]["secure"]
    secure = Client().get("/login/", secure=True)
    assert secure.cookies["csrftoken"]["secure"]
    signed_in = Client().post("/login/", {"username": "alice", "password": PASSWORD}, secure=True)
    assert signed_in.status_code == 302
    assert signed_in.cookies["sessionid"]["secure"]


@pytest.fixture
def behind_a_proxy(settings: Any) -> None:
    settings.OBEYA_TRUST_PROXY = 1
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def test_behind_a_trusted_proxy_its_scheme_and_client_address_count(
    behind_a_proxy: None, db: None
) -> None:
    client = Client(REMOTE_ADDR="10.0.0.2")  # the proxy
    response = client.post(
        "/login/",
        {"username": "alice", "password": "wrong"},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4, 203.0.113.77"},
    )
    assert response.cookies["csrftoken"]["secure"]
    # The last hop is what the proxy saw; "1.2.3.4" is whatever the client claimed.
    assert SignInAttempt.objects.get().ip == "203.0.113.77"


def test_without_trusted_proxies_forwarded_headers_are_ignored(db: None) -> None:
    response = Client(REMOTE_ADDR="10.0.0.2").post(
        "/login/",
        {"username": "alice", "password": "wrong"},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.77"},
    )
    assert not response.cookies["csrftoken"]["secure"]
    assert SignInAttempt.objects.get().ip == "10.0.0.2"


def _settings_with(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    code = (
        "from obeya import settings as s; "
        "print(s.SECURE_PROXY_SSL_HEADER if hasattr(s, 'SECURE_PROXY_SSL_HEADER') else None, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "OBEYA_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_settings_turn_these_on(tmp_path: Path) -> None:
    trusted = _settings_with(tmp_path, OBEYA_TRUST_PROXY="1", OBEYA_SECURE_COOKIES="true")
    assert trusted.stdout.split() == ["('HTTP_X_FORWARDED_PROTO',", "'https')", "True", "True"]
    default = _settings_with(tmp_path)
    assert default.stdout.split() == ["None", "False", "False"]
    wrong = _settings_with(tmp_path, OBEYA_SECURE_COOKIES="maybe")
    assert wrong.returncode != 0
    assert "OBEYA_SECURE_COOKIES must be one of auto, true, false, not 'maybe'" in wrong.stderr
