"""The demo data set: people, services with charters, teams and back-dated lifecycle history.

Everything goes through the same services as a user's changes, so the demo's timelines and
audit trail are real events. Loading twice changes nothing.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

import obeya
from obeya import demo_deploy, demo_ops
from obeya.catalog import services as catalog
from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.errors import NotFound

ADMIN = "admin"
PEOPLE = {
    "alice": "service_master",
    "bob": "developer",
    "carol": "gatekeeper",
    "dave": "devops_engineer",
    "erin": "reliability_engineer",
    "frank": "operator",
    "grace": "process_master",
}


@dataclass(frozen=True)
class DemoService:
    slug: str
    name: str
    team: str
    description: str
    vision: str
    goals: str
    business_value: str
    customers: str
    path: tuple[str, ...]  # stages after "strategy", in order
    roles: tuple[tuple[str, str], ...]


SERVICES = (
    DemoService(
        "hello-service",
        "Hello Service",
        "Team Falcon",
        "A small web service that greets people; the pipeline and deployment showcase.",
        "The friendliest hello on the internet, deployed many times a day without fear.",
        "Deploy on demand, at least daily.\nRestore service in under an hour.",
        "Shows every team how a service lives the DevOps way, end to end.",
        "Every product team; new joiners on their first day.",
        ("marketing", "planning", "requirements", "development", "deployment", "operation"),
        (
            ("bob", "developer"),
            ("carol", "gatekeeper"),
            ("dave", "devops_engineer"),
            ("erin", "reliability_engineer"),
            ("frank", "operator"),
            ("grace", "process_master"),
        ),
    ),
    DemoService(
        "payments-api",
        "Payments API",
        "Team Heron",
        "Takes card and bank payments for the shop and settles them nightly.",
        "Payments that never lose a cent and never keep a customer waiting.",
        "99.95% availability.\np95 latency under 300 ms.\nRPO 5 minutes, RTO 30 minutes.",
        "Every order depends on it: revenue flows through here.",
        "The web shop, the mobile app, the finance team.",
        ("marketing", "planning", "requirements", "development"),
        (("bob", "developer"), ("carol", "gatekeeper"), ("dave", "devops_engineer")),
    ),
    DemoService(
        "search-insights",
        "Search Insights",
        "Team Owl",
        "Reports what customers search for and do not find.",
        "Turn failed searches into the next features we build.",
        "Weekly report to product owners.\nNo personal data kept past 30 days.",
        "Finds demand we are missing today.",
        "Product owners and the marketing team.",
        ("marketing", "planning", "requirements"),
        (("erin", "reliability_engineer"), ("grace", "process_master")),
    ),
    DemoService(
        "legacy-reports",
        "Legacy Reports",
        "Team Falcon",
        "Nightly PDF reports from the old warehouse; being replaced by Search Insights.",
        "Keep the lights on until the replacement is proven, then retire cleanly.",
        "No new features.\nHand every consumer over to the replacement.",
        "Still read by finance every Monday.",
        "Finance and two partner companies.",
        (
            "marketing",
            "planning",
            "requirements",
            "development",
            "deployment",
            "operation",
            "maintenance",
        ),
        (("frank", "operator"), ("dave", "devops_engineer")),
    ),
)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def _password_file() -> Path:
    return Path(settings.DATA_DIR) / "demo-password"


def _demo_password() -> str:
    """The demo's sign-in password, kept in the data dir so `make run` can show it again."""
    path = _password_file()
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        password = secrets.token_urlsafe(12)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password)
        return password


def _ensure_people(system: Actor, password: str, echo: Callable[[str], None]) -> None:
    for username in (ADMIN, *PEOPLE):
        try:
            core.get_user(username)
        except NotFound:
            core.create_user(
                system,
                username,
                password,
                is_admin=username == ADMIN,
                email=f"{username}@example.com",
                check_password_strength=False,
            )
            echo(f"  user {username}")


def _load_service(spec: DemoService, start_days_ago: int) -> None:
    clock = ManualClock(timezone.now() - timedelta(days=start_days_ago))
    owner = Actor(user=core.get_user("alice"), channel="cli", clock=clock)
    catalog.create_service(
        owner,
        spec.slug,
        spec.name,
        description=spec.description,
        owner_team=spec.team,
        vision=spec.vision,
        goals=spec.goals,
        business_value=spec.business_value,
        customers=spec.customers,
    )
    for username, role in spec.roles:
        clock.advance(timedelta(hours=3))
        catalog.add_member(owner, spec.slug, username, role)
    step = timedelta(days=max(1, start_days_ago // (len(spec.path) + 1)))
    for stage in spec.path:
        clock.advance(step)
        catalog.move_stage(owner, spec.slug, stage, reason=f"ready for {stage}")


EXAMPLE = Path(obeya.__file__).resolve().parents[2] / "examples" / "hello-service"
SHOUT_PATCH = (
    "hello/app.py",
    'return f"Hello, {cleaned}!" if cleaned else "Hello, world!"',
    'return f"HELLO, {cleaned.upper()}!" if cleaned else "HELLO, WORLD!"',
)


def _commit(repo: Path, message: str, who: str, when: str) -> None:
    from obeya.pipelines.git import git

    env_identity = ("-c", f"user.name={who.title()}", "-c", f"user.email={who}@example.com")
    git(*env_identity, "add", "-A", cwd=repo)
    git(*env_identity, "commit", "-q", "--date", when, "-m", message, cwd=repo)


def _hello_repository(echo: Callable[[str], None]) -> Path | None:
    """A git repository of examples/hello-service in the data dir, with a little history:
    two commits on main and a branch whose change breaks a unit test."""
    if not EXAMPLE.is_dir():
        echo("  (examples/hello-service not found: the demo pipeline is skipped)")
        return None
    repo = Path(settings.DATA_DIR) / "demo-repos" / "hello-service"
    if (repo / ".git").is_dir():
        return repo
    from obeya.pipelines.git import git

    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", "reports"))
    git("init", "-q", "-b", "main", str(repo))
    version = repo / "VERSION"
    version.write_text("0.9.0\n")
    _commit(repo, "Hello Service: greet by name, health check, pipeline", "bob", "3 days ago")
    version.write_text("1.0.0\n")
    _commit(repo, "Release 1.0.0", "alice", "1 day ago")
    git("checkout", "-q", "-b", "feature/shout", cwd=repo)
    path, old, new = SHOUT_PATCH
    source = repo / path
    source.write_text(source.read_text().replace(old, new))
    _commit(repo, "Shout the greeting (breaks the unit tests)", "bob", "2 hours ago")
    git("checkout", "-q", "main", cwd=repo)
    demo_deploy.release_branch(repo, _commit)
    return repo


def _hello_pipeline(echo: Callable[[str], None]) -> None:
    from obeya.pipelines import runs

    if runs.list_runs("hello-service").exists():
        return
    repo = _hello_repository(echo)
    if repo is None:
        return
    alice = Actor(user=core.get_user("alice"), channel="cli")
    catalog.update_service(alice, "hello-service", repository_url=str(repo))
    main = runs.create_run(alice, "hello-service", "main", trigger="demo")
    shout = runs.create_run(alice, "hello-service", "feature/shout", trigger="demo")
    echo(
        f"  pipeline runs #{main.number} (main) and #{shout.number} (feature/shout) queued:"
        " the embedded runners of `obeya serve` run them"
    )


@dataclass(frozen=True)
class DemoStory:
    kind: str
    title: str
    column: str  # where its card ends up
    fields: dict[str, Any]
    override: str = ""  # the reason for going over the column's WIP limit


# The hello-service backlog. S-1 and S-2 are the keys the example's feature files tag, so
# they come first; the feature files themselves become test stories when `obeya serve`
# runs the pipeline.
HELLO_BACKLOG = (
    DemoStory(
        "user",
        "Greet visitors by name",
        "Review",
        {
            "estimate": 3,
            "labels": ["greeting"],
            "assignees": ["bob"],
            "details": {
                "as_a": "visitor",
                "i_want": "to be greeted by my name",
                "so_that": "I feel welcome",
                "acceptance_criteria": 'GET /hello?name=Ada answers "Hello, Ada!"; '
                'without a name, "Hello, world!".',
                "operational_conditions": "Answers in under 300 ms at 50 requests a second.",
            },
        },
    ),
    DemoStory(
        "user",
        "Report health and version",
        "Review",
        {
            "estimate": 2,
            "labels": ["operations"],
            "assignees": ["dave"],
            "details": {
                "as_a": "operator",
                "i_want": "a health endpoint that reports the status and the running version",
                "so_that": "I know the service is up and which release answers",
                "acceptance_criteria": 'GET /health answers {"status": "ok", "version": …}.',
            },
        },
    ),
    DemoStory(
        "user",
        "Greet visitors in their own language",
        "Ready",
        {
            "estimate": 13,
            "labels": ["greeting"],
            "description": "French, German, Japanese, Spanish etc., picked from the browser.",
            "details": {
                "as_a": "visitor from abroad",
                "i_want": "the greeting in my language",
                "so_that": "the service feels made for me",
            },
        },
    ),
    DemoStory(
        "user",
        "Improve everything about greetings",
        "Backlog",
        {
            "description": "Make greetings better somehow; details TBD.",
            "details": {"i_want": "better greetings"},
        },
    ),
    DemoStory(
        "user",
        "Shout the greeting on request",
        "In progress",
        {
            "estimate": 2,
            "labels": ["greeting"],
            "assignees": ["bob"],
            "description": "Builds on S-1: an upper-case greeting for the loud of heart.",
            "details": {
                "as_a": "excited visitor",
                "i_want": "to be greeted in capitals when I ask for it",
                "so_that": "the greeting matches my mood",
            },
        },
    ),
    DemoStory(
        "operation",
        "Stay available and fast",
        "In progress",
        {
            "estimate": 3,
            "labels": ["slr"],
            "assignees": ["erin"],
            "description": "Service-level requirements agreed with the product teams.",
            "details": {
                "availability_target": 99.9,
                "latency_target_ms": 300,
                "continuity_conditions": "Two instances behind the load balancer; a rolling "
                "deploy never takes both down.",
            },
        },
    ),
    DemoStory(
        "operation",
        "Recover from losing the data disk",
        "In progress",
        {
            "estimate": 5,
            "labels": ["slr", "continuity"],
            "assignees": ["frank"],
            "details": {
                "rpo_minutes": 15,
                "rto_minutes": 60,
                "backup_frequency": "daily",
                "continuity_conditions": "Greeting statistics are backed up daily and the "
                "write log every 15 minutes; a restore drill runs each quarter.",
            },
        },
    ),
    DemoStory(
        "change_request",
        "Ignore spaces around a visitor's name",
        "In progress",
        {
            "estimate": 1,
            "labels": ["greeting", "feedback"],
            "assignees": ["bob"],
            "description": '"Hello,  Ada !" looks broken when a form adds spaces around it.',
            "details": {
                "source": "customer_feedback",
                "reference": "Support inbox, ticket 4711 (two customers)",
            },
        },
        override="Customer-visible defect reported twice; a one-line fix, cannot wait.",
    ),
)


def _hello_backlog(echo: Callable[[str], None]) -> None:
    """The hello-service backlog and board, through the backlog and board services."""
    from obeya.backlog import services as backlog
    from obeya.board import services as board

    if backlog.list_stories("hello-service").exists():
        return
    clock = ManualClock(timezone.now() - timedelta(days=12))
    alice = Actor(user=core.get_user("alice"), channel="cli", clock=clock)
    for story in HELLO_BACKLOG:
        clock.advance(timedelta(hours=5))
        backlog.create_story(alice, "hello-service", story.kind, story.title, **story.fields)
    columns = board.columns_of("hello-service")
    names = [column.name for column in columns]
    for number, story in enumerate(HELLO_BACKLOG, start=1):
        key = f"S-{number}"
        for column in columns[1 : names.index(story.column) + 1]:
            clock.advance(timedelta(hours=7))
            reason = story.override if column.name == story.column else ""
            board.move_card(
                alice, "hello-service", key, column.name, override_reason=reason or None
            )
            if column.name != story.column:  # meet its definition of done before moving on
                for item in column.done_checklist:
                    board.check_item(alice, "hello-service", key, item, True)
    # S-1 was shown to the service master: once its scenarios pass it may go to Done.
    board.check_item(alice, "hello-service", "S-1", "Demonstrated to the service master", True)
    echo(
        f"  backlog of hello-service: {len(HELLO_BACKLOG)} stories on the board; its feature"
        " files become test stories when the pipeline runs"
    )


def load(echo: Callable[[str], None] = print) -> Credentials:
    """Load the demo once; later calls only report the sign-in."""
    system = Actor(user=None, channel="cli")
    password = _demo_password()
    echo("Loading the demo:")
    _ensure_people(system, password, echo)
    for index, spec in enumerate(SERVICES):
        try:
            catalog.get_service(spec.slug)
        except NotFound:
            _load_service(spec, start_days_ago=90 - index * 15)
            echo(f"  service {spec.slug}")
    demo_deploy.environments(echo)
    _hello_pipeline(echo)
    _hello_backlog(echo)
    demo_ops.load(echo)
    return Credentials(ADMIN, password)
