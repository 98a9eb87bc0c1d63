"""A service whose pipeline packages a tiny release and deploys it to local targets.

The package job is run through the real runner protocol in-process (claim, artifact
upload, complete); the deployer then works on real directories under the test's tmp dir.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from obeya.catalog import services as catalog
from obeya.core.models import User
from obeya.deploy import services as deploy
from obeya.deploy.models import Deployment, Environment
from obeya.pipelines import artifacts, leases, runners, runs
from obeya.pipelines.models import Run
from tests.conftest import SYSTEM, actor
from tests.pipelines.conftest import Repo

SPEC = """\
stages: [package, staging, production]
jobs:
  package:
    stage: package
    script: [echo package]
    artifacts: {paths: [app/]}
  to-staging:
    stage: staging
    environment: staging
    deploy: {artifact: package}
  to-production:
    stage: production
    environment: production
    deploy: {artifact: package}
    when: manual
"""
HEALTH = {"kind": "command", "command": "grep -q healthy STATUS"}


def release_tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Shop:
    """The deploying service, its people and its environments' roots."""

    slug: str
    repo: Repo
    root: Path
    owner: User
    runner: Any

    def target(self, name: str) -> Path:
        return self.root / name

    def build(self, version: str, status: str = "healthy", ref: str = "main") -> Run:
        """A run whose package job succeeded with a release of ``version``."""
        run = runs.create_run(actor(self.owner), self.slug, ref)
        claim = leases.claim(self.runner)
        assert claim is not None and claim.job.name == "package"
        archive = release_tar({"VERSION": f"{version}\n", "STATUS": f"{status}\n"})
        artifacts.upload(
            self.runner, claim.job.pk, claim.lease_token, "package", io.BytesIO(archive)
        )
        leases.complete(self.runner, claim.job.pk, claim.lease_token, "succeeded", 0)
        run.refresh_from_db()
        return run

    def commit(self, message: str) -> str:
        return self.repo.commit({"CHANGES": message + "\n"}, message)


@pytest.fixture
def shop(tmp_path: Path, make_user: Callable[..., User]) -> Shop:
    owner = make_user("olga")
    repo = Repo(tmp_path / "repo")
    repo.commit({"obeya.yml": SPEC}, "first commit")
    catalog.create_service(actor(owner), "shop", "Shop", repository_url=str(repo.path))
    catalog.add_member(actor(owner), "shop", "olga", "devops_engineer")
    runner, _ = runners.register_runner(SYSTEM, "r1", [])
    root = tmp_path / "targets"
    for name, position, protected in (("staging", 10, False), ("production", 20, True)):
        deploy.create_environment(
            actor(owner),
            "shop",
            name,
            tier=name,
            position=position,
            protected=protected,
            required_approvals=1 if protected else 0,
            target={"kind": "local", "root": str(root / name)},
            health=HEALTH,
            warmup_s=3,
            health_passes=2,
            health_interval_ms=50,
            retention=3,
        )
    return Shop("shop", repo, root, owner, runner)


def environment(name: str) -> Environment:
    return Environment.objects.get(service__slug="shop", name=name)


def latest(name: str) -> Deployment:
    found = Deployment.objects.filter(environment__name=name).order_by("-id").first()
    assert found is not None
    return found
