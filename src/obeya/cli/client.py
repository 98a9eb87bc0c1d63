"""The API client behind the CLI verbs: the saved login, OBEYA_URL/OBEYA_TOKEN, errors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from obeya.cli.output import fail


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "obeya"


def login_file() -> Path:
    return config_dir() / "login.json"


@dataclass(frozen=True)
class Login:
    url: str
    token: str


def save_login(login: Login) -> Path:
    path = login_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": login.url, "token": login.token}, handle)
    return path


def current_login() -> Login:
    """OBEYA_URL / OBEYA_TOKEN win over the login saved by ``obeya login``."""
    saved: dict[str, str] = {}
    try:
        saved = json.loads(login_file().read_text())
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        fail(f"cannot read {login_file()}: run `obeya login URL` again")
    url = os.environ.get("OBEYA_URL") or saved.get("url", "")
    token = os.environ.get("OBEYA_TOKEN") or saved.get("token", "")
    if not url or not token:
        fail("not logged in: run `obeya login URL`, or set OBEYA_URL and OBEYA_TOKEN")
    return Login(url.rstrip("/"), token)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error", {})
        message = str(error.get("message") or body)
    except ValueError:
        message = response.text.strip()[:200] or response.reason_phrase
    if response.status_code == 401:
        message += " (run `obeya login URL` with a valid token)"
    return message


def request(
    method: str,
    path: str,
    *,
    json_body: Any = None,
    params: dict[str, Any] | None = None,
    login: Login | None = None,
) -> Any:
    """Call the API; any 4xx/5xx or network failure becomes one line and exit 2."""
    login = login or current_login()
    url = f"{login.url}/api{path}"
    try:
        response = httpx.request(
            method,
            url,
            json=json_body,
            params={k: v for k, v in (params or {}).items() if v not in (None, "")},
            headers={"Authorization": f"Bearer {login.token}", "Accept": "application/json"},
            timeout=30,
        )
    except httpx.HTTPError as error:
        fail(f"cannot reach {login.url}: {error}")
    if response.status_code >= 400:
        fail(_message(response))
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


def get_all(path: str, params: dict[str, Any] | None = None, limit: int | None = None) -> list[Any]:
    """Every item of a paginated list endpoint (or the first ``limit``)."""
    items: list[Any] = []
    offset = 0
    page = min(limit or 100, 100)
    while True:
        body = request("GET", path, params={**(params or {}), "limit": page, "offset": offset})
        items.extend(body["items"])
        offset += len(body["items"])
        if not body["items"] or offset >= body["count"] or (limit and len(items) >= limit):
            return items[:limit] if limit else items


def read_log(job: int, offset: int, attempt: int | None) -> tuple[bytes, str, int, int]:
    """(bytes from ``offset``, the job's status, the attempt read, the next offset)."""
    login = current_login()
    try:
        response = httpx.get(
            f"{login.url}/api/jobs/{job}/log",
            params={"offset": offset, **({"attempt": attempt} if attempt else {})},
            headers={"Authorization": f"Bearer {login.token}"},
            timeout=30,
        )
    except httpx.HTTPError as error:
        fail(f"cannot reach {login.url}: {error}")
    if response.status_code >= 400:
        fail(_message(response))
    return (
        response.content,
        response.headers.get("X-Obeya-Job-Status", ""),
        int(response.headers.get("X-Obeya-Attempt", "0") or 0),
        int(response.headers.get("X-Obeya-Next-Offset", offset + len(response.content))),
    )


def download(path: str, target: Path) -> str:
    """Stream an API file to ``target``; checks and returns the server's sha256."""
    import hashlib

    login = current_login()
    digest = hashlib.sha256()
    try:
        with httpx.stream(
            "GET",
            f"{login.url}/api{path}",
            headers={"Authorization": f"Bearer {login.token}"},
            timeout=60,
        ) as response:
            if response.status_code >= 400:
                response.read()
                fail(_message(response))
            expected = response.headers.get("X-Obeya-Sha256", "")
            partial = target.with_name(target.name + ".part")
            with partial.open("wb") as out:
                for block in response.iter_bytes(1 << 16):
                    digest.update(block)
                    out.write(block)
    except httpx.HTTPError as error:
        fail(f"cannot reach {login.url}: {error}")
    if expected and digest.hexdigest() != expected:
        partial.unlink(missing_ok=True)
        fail(f"download corrupted: sha256 {digest.hexdigest()} is not {expected}")
    partial.replace(target)
    return digest.hexdigest()
