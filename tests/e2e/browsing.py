"""What a browser test needs: the running server, its people, and the steps done again and again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, expect


@dataclass(frozen=True)
class Person:
    username: str
    password: str


@dataclass(frozen=True)
class Server:
    """A running `obeya serve`: where it answers and who may sign in."""

    url: str
    admin: Person
    user: Person
    data_dir: Path


def sign_in(page: Page, server: Server, person: Person) -> None:
    page.goto(f"{server.url}/login/")
    page.get_by_label("Username").fill(person.username)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Services", exact=True)).to_be_visible()


def register_service(page: Page, server: Server, slug: str, name: str) -> None:
    """Fill the New service form with a slug and a name, and submit it."""
    page.goto(f"{server.url}/services/new/")
    page.get_by_label("Slug").fill(slug)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Register service").click()
