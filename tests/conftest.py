"""Fixtures shared by every test: people, tokens, and an API client that speaks JSON."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.core.models import User
from obeya.runner import keeper
from tests.event_log import allow_flushing

PASSWORD = "correct horse battery staple"
# The database refuses to delete events; flushing the test database between tests must not.
allow_flushing()
SYSTEM = Actor(user=None, channel="cli")


@pytest.fixture(autouse=True)
def _data_dir(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """Each test gets its own data dir, so files never leak between tests; the sandboxes
    its deployments' hooks ran in (and the services they started) end with it."""
    settings.DATA_DIR = tmp_path / "data"
    # The real hasher is slow on purpose; tests only need a correct one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield settings.DATA_DIR
    keeper.stop_all(Path(settings.DATA_DIR) / "keepers")


@pytest.fixture(autouse=True, scope="session")
def _no_keeper_outlives_the_tests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Sandboxes kept for deployment roots under this session's folders, by servers the
    tests started, end with the session."""
    yield
    top = str(tmp_path_factory.getbasetemp()).encode()  # this worker's only
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            words = (entry / "cmdline").read_bytes().split(b"\0")
            if keeper.MARK.encode() in words and any(w.startswith(top) for w in words):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(username: str, *, admin: bool = False) -> User:
        return core.create_user(
            SYSTEM, username, PASSWORD, is_admin=admin, check_password_strength=False
        )

    return make


@pytest.fixture
def admin(make_user: Callable[..., User]) -> User:
    return make_user("root", admin=True)


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("bob")


def actor(user: User | None) -> Actor:
    return Actor(user=user, channel="web", ip="127.0.0.1")


class Api:
    """A JSON client for /api with a Bearer token."""

    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.token = token

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        extra = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}
        extra.update(headers)
        response = getattr(self.client, method.lower())(
            f"/api{path}",
            data=json.dumps(body) if body is not None else None,
            content_type="application/json",
            **extra,
        )
        response.body = response.json() if response.content else None
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body if body is not None else {})

    def patch(self, path: str, body: Any) -> Any:
        return self.call("PATCH", path, body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)


@pytest.fixture
def api_for() -> Callable[..., Api]:
    def make(user: User, scope: str = "write") -> Api:
        _, plaintext = core.create_token(SYSTEM, user, name="test", scope=scope, days=30)
        return Api(plaintext)

    return make
