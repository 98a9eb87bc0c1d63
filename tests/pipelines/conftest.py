"""A real git repository with an obeya.yml, a service pointing at it, and a runner."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from obeya.catalog import services as catalog
from obeya.pipelines import leases, runners
from tests.conftest import SYSTEM, actor

SPEC = """\
stages: [build, test]
jobs:
  build:
    stage: build
    script: [echo build]
  unit:
    stage: test
    script: [echo unit]
  lint:
    stage: test
    script: [echo lint]
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=Ann Dev",
            "-c",
            "user.email=ann@example.com",
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repository = Repo(tmp_path / "repo")
    repository.commit({"obeya.yml": SPEC, "README": "hello\n"}, "first commit")
    return repository


@pytest.fixture
def service(alice, repo: Repo):
    return catalog.create_service(actor(alice), "svc", "Svc", repository_url=str(repo.path))


@pytest.fixture
def runner(db):
    made, _ = runners.register_runner(SYSTEM, "r1", ["linux"])
    return made


@pytest.fixture
def finish(runner) -> Callable[..., object]:
    """Claim the next job as ``runner`` and complete it with ``outcome``."""

    def run_one(outcome: str = "succeeded", exit_code: int | None = 0):
        claim = leases.claim(runner)
        assert claim is not None, "no job to claim"
        return leases.complete(runner, claim.job.pk, claim.lease_token, outcome, exit_code)

    return run_one
