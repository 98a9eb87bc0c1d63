"""End-to-end fixtures: a real `obeya serve` on a free port, and a real Chromium to drive it.

Each server runs in its own data dir on embedded SQLite, whatever database the rest of the
suite uses, so browser tests never touch the test database and never share state with it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.browsing import Person, Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 30.0
OBEYA = Path(sys.executable).with_name("obeya")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(data_dir: Path) -> dict[str, str]:
    """The caller's environment without its OBEYA_* settings: embedded SQLite in data_dir."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OBEYA_")}
    env.update(OBEYA_DATA_DIR=str(data_dir), OBEYA_DATABASE_URL="", OBEYA_RUNNERS="0")
    return env


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`obeya serve` exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(
        f"`obeya serve` did not answer /api/health in {START_TIMEOUT:.0f}s:\n{log.read_text()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _serve(root: Path, admin: Person, user: Person) -> Iterator[Server]:
    """Start `obeya serve --no-runners` on root/data, wait for /api/health, stop it after."""
    env = _server_env(root / "data")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(OBEYA), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-runners"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(process, url, log)
        yield Server(url=url, admin=admin, user=user, data_dir=root / "data")
    finally:
        _stop(process)


def _obeya(root: Path, *args: str, stdin: str = "") -> str:
    """Run one admin verb on root/data; its output, or the test fails showing it."""
    if not OBEYA.exists():
        pytest.fail(f"no obeya executable next to {sys.executable}: run `make install-dev`")
    done = subprocess.run(
        [str(OBEYA), *args],
        input=stdin,
        env=_server_env(root / "data"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        pytest.fail(
            f"`obeya {' '.join(args)}` exited with {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real, empty Obeya for one test module: an admin and a plain user, no services."""
    root = tmp_path_factory.mktemp("obeya-e2e")
    admin = Person("admin", "admin-e2e-Secret-1")
    user = Person("alice", "alice-e2e-Secret-1")
    _obeya(
        root,
        "createuser",
        admin.username,
        "--admin",
        "--password-stdin",
        stdin=f"{admin.password}\n",
    )
    _obeya(root, "createuser", user.username, "--password-stdin", stdin=f"{user.password}\n")
    yield from _serve(root, admin, user)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real Obeya loaded with `obeya demo`: services with charters, teams and history."""
    root = tmp_path_factory.mktemp("obeya-demo")
    _obeya(root, "demo")
    password = (root / "data" / "demo-password").read_text().strip()
    yield from _serve(root, Person("admin", password), Person("alice", password))


def _chromium_missing() -> NoReturn:
    reason = (
        f"BROWSER TESTS NOT RUN: {CHROMIUM} is missing. Install Debian's chromium package "
        "(apt-get install chromium); never `playwright install`."
    )
    if os.environ.get("OBEYA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} OBEYA_REQUIRE_BROWSER=1 makes this a failure.")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test worker; every test opens its own context in it."""
    if not CHROMIUM.exists():
        _chromium_missing()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in its own browser context (own cookies) at a desktop size."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()
